-- a Kafka table written for Flink: Java-client properties are mapped to librdkafka's at validate time
-- (the JAAS config to sasl.username/sasl.password), the Java-only ones accepted with a notice
CREATE TABLE orders (order_id BIGINT, amount DOUBLE) WITH (
  'connector' = 'kafka',
  'topic' = 'orders',
  'properties.bootstrap.servers' = 'localhost:1',
  'properties.group.id' = 'orders-job',
  'properties.security.protocol' = 'SASL_PLAINTEXT',
  'properties.sasl.mechanism' = 'PLAIN',
  'properties.sasl.jaas.config' = 'org.apache.kafka.common.security.plain.PlainLoginModule required username="app" password="Hunter2-Very-Secret";',
  'properties.max.poll.records' = '500',
  'properties.fetch.max.wait.ms' = '250',
  'properties.partition.assignment.strategy' = 'org.apache.kafka.clients.consumer.RangeAssignor',
  'format' = 'json'
);
