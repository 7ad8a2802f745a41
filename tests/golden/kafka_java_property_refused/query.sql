-- a Java-client property librdkafka has no counterpart for is refused at validate time, naming the one to use
CREATE TABLE orders (order_id BIGINT, amount DOUBLE) WITH (
  'connector' = 'kafka',
  'topic' = 'orders',
  'properties.bootstrap.servers' = 'localhost:1',
  'properties.ssl.truststore.location' = '/etc/kafka/client.truststore.jks',
  'format' = 'json'
);
