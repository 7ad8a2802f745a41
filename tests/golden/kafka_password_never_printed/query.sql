-- a JAAS config librdkafka cannot take is refused without printing it (nor its password)
CREATE TABLE orders (order_id BIGINT, amount DOUBLE) WITH (
  'connector' = 'kafka',
  'topic' = 'orders',
  'properties.bootstrap.servers' = 'localhost:1',
  'properties.security.protocol' = 'SASL_PLAINTEXT',
  'properties.sasl.mechanism' = 'OAUTHBEARER',
  'properties.sasl.jaas.config' = 'org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule required clientId="app" clientSecret="Hunter2-Very-Secret";',
  'format' = 'json'
);
