-- Nexmark's DDL (nexmark/nexmark nexmark-flink/src/main/resources/queries/ddl_gen.sql and
-- ddl_views.sql at its Flink 2.x revision, where the reserved word dateTime became customTime;
-- Apache-2.0), verbatim but for the source's WITH clause: the 'nexmark'
-- connector's events, dumped as NDJSON (tests/nexmark/README.md), read by the filesystem connector.
CREATE TABLE datagen (
    event_type int,
    person ROW<
        id  BIGINT,
        name  VARCHAR,
        emailAddress  VARCHAR,
        creditCard  VARCHAR,
        city  VARCHAR,
        state  VARCHAR,
        customTime TIMESTAMP(3),
        extra  VARCHAR>,
    auction ROW<
        id  BIGINT,
        itemName  VARCHAR,
        description  VARCHAR,
        initialBid  BIGINT,
        reserve  BIGINT,
        customTime  TIMESTAMP(3),
        expires  TIMESTAMP(3),
        seller  BIGINT,
        category  BIGINT,
        extra  VARCHAR>,
    bid ROW<
        auction  BIGINT,
        bidder  BIGINT,
        price  BIGINT,
        channel  VARCHAR,
        url  VARCHAR,
        customTime  TIMESTAMP(3),
        extra  VARCHAR>,
    customTime AS
        CASE
            WHEN event_type = 0 THEN person.customTime
            WHEN event_type = 1 THEN auction.customTime
            ELSE bid.customTime
        END,
    WATERMARK FOR customTime AS customTime - INTERVAL '4' SECOND
) WITH (
    'connector' = 'filesystem',
    'path' = '${INPUT}',
    'format' = 'json'
);

CREATE VIEW person AS
SELECT
    person.id,
    person.name,
    person.emailAddress,
    person.creditCard,
    person.city,
    person.state,
    customTime,
    person.extra
FROM datagen WHERE event_type = 0;

CREATE VIEW auction AS
SELECT
    auction.id,
    auction.itemName,
    auction.description,
    auction.initialBid,
    auction.reserve,
    customTime,
    auction.expires,
    auction.seller,
    auction.category,
    auction.extra
FROM datagen WHERE event_type = 1;

CREATE VIEW bid AS
SELECT
    bid.auction,
    bid.bidder,
    bid.price,
    bid.channel,
    bid.url,
    customTime,
    bid.extra
FROM datagen WHERE event_type = 2;

-- Query2: Selection
CREATE TABLE nexmark_q2 (
  auction  BIGINT,
  price  BIGINT
) WITH (
  'connector' = 'filesystem',
  'path' = '${OUTPUT}',
  'format' = 'json'
);

INSERT INTO nexmark_q2
SELECT auction, price FROM bid WHERE MOD(auction, 123) = 0;
