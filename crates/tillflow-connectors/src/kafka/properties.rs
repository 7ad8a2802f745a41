//! A Kafka table's `properties.*` as librdkafka takes them. Flink hands `properties.*` to the Java
//! client; tillflow's client is librdkafka, which spells some of the same settings differently and
//! knows none of the Java-only ones. This module owns the one table of mappings — a Java client
//! property renamed, converted (`sasl.jaas.config` → `sasl.username`/`sasl.password`), accepted
//! with a notice (it has no counterpart and no effect on results here) or refused naming the
//! librdkafka property to use — and checks the result with librdkafka itself (each property set
//! on a native configuration, no connection), all at `validate` time. Messages name keys only:
//! property values (passwords, JAAS configs) never appear in an error or a notice.

use crate::{ConnectorError, TableSpec};
use rdkafka::config::ClientConfig;
use rdkafka::error::KafkaError;
use rdkafka::types::RDKafkaConfRes;

/// librdkafka properties converted from one Java property, or what is wrong (without the value).
type Converted = Result<Vec<(&'static str, String)>, String>;

/// What becomes of one Java client property.
enum Mapping {
    /// librdkafka's name for the same setting.
    Rename(&'static str),
    /// Converted by a function returning the librdkafka properties (or what is wrong, without
    /// the value).
    Convert(fn(&str) -> Converted),
    /// No counterpart and no effect on results: dropped with this notice.
    Noted(&'static str),
    /// No counterpart: refused, saying what to use instead.
    Refused(&'static str),
}

const SERDE: &str =
    "Flink sets the (de)serializers itself, and tillflow encodes and decodes with the table's 'format', 'key.format' and 'value.format'";
const TRUSTSTORE: &str =
    "librdkafka reads no Java truststore: give the CA certificates as a PEM file in 'properties.ssl.ca.location' (keytool -exportcert -rfc exports them)";

/// The Java client properties tillflow maps. A property not listed is handed to librdkafka as
/// it is (most names are shared) and refused there if librdkafka does not know it.
const MAPPINGS: &[(&str, Mapping)] = &[
    ("sasl.jaas.config", Mapping::Convert(jaas)),
    ("fetch.max.wait.ms", Mapping::Rename("fetch.wait.max.ms")),
    ("buffer.memory", Mapping::Convert(buffer_memory)),
    ("max.request.size", Mapping::Rename("message.max.bytes")),
    ("receive.buffer.bytes", Mapping::Convert(receive_buffer)),
    ("send.buffer.bytes", Mapping::Convert(send_buffer)),
    ("partition.assignment.strategy", Mapping::Convert(assignment)),
    ("auto.offset.reset", Mapping::Convert(offset_reset)),
    ("ssl.endpoint.identification.algorithm", Mapping::Convert(endpoint_identification)),
    ("ssl.keystore.type", Mapping::Convert(keystore_type)),
    ("key.serializer", Mapping::Noted(SERDE)),
    ("value.serializer", Mapping::Noted(SERDE)),
    ("key.deserializer", Mapping::Noted(SERDE)),
    ("value.deserializer", Mapping::Noted(SERDE)),
    (
        "max.poll.records",
        Mapping::Noted("librdkafka hands out one message per poll from its prefetch queue (size it with 'properties.queued.max.messages.kbytes')"),
    ),
    (
        "default.api.timeout.ms",
        Mapping::Noted("tillflow gives brokers 10 s to answer at start and then waits as librdkafka's own timeouts say"),
    ),
    (
        "max.block.ms",
        Mapping::Noted("tillflow's producer never blocks a send for buffer space; it polls for deliveries and retries"),
    ),
    (
        "metric.reporters",
        Mapping::Noted("tillflow reports Kafka metrics itself (/metrics, consumer lag per partition)"),
    ),
    ("ssl.truststore.location", Mapping::Refused(TRUSTSTORE)),
    ("ssl.truststore.password", Mapping::Refused(TRUSTSTORE)),
    ("ssl.truststore.type", Mapping::Refused(TRUSTSTORE)),
    (
        "ssl.truststore.certificates",
        Mapping::Refused("give the CA certificates in 'properties.ssl.ca.pem' (PEM text) or 'properties.ssl.ca.location' (a PEM file)"),
    ),
    (
        "ssl.keystore.certificate.chain",
        Mapping::Refused("give the certificate in 'properties.ssl.certificate.pem' or 'properties.ssl.certificate.location'"),
    ),
    (
        "ssl.keystore.key",
        Mapping::Refused("give the private key in 'properties.ssl.key.pem' or 'properties.ssl.key.location'"),
    ),
    (
        "interceptor.classes",
        Mapping::Refused("Java interceptors cannot run in librdkafka; librdkafka has 'properties.plugin.library.paths' for native plugins"),
    ),
    (
        "sasl.login.callback.handler.class",
        Mapping::Refused("Java callback handlers cannot run in librdkafka; for OAUTHBEARER use 'properties.sasl.oauthbearer.method' = 'oidc' and the 'properties.sasl.oauthbearer.*' properties"),
    ),
    (
        "sasl.client.callback.handler.class",
        Mapping::Refused("Java callback handlers cannot run in librdkafka; use 'properties.sasl.username' / 'properties.sasl.password'"),
    ),
    (
        "ssl.enabled.protocols",
        Mapping::Refused("librdkafka negotiates the TLS version itself (limit it with 'properties.ssl.cipher.suites' if needed)"),
    ),
    (
        "ssl.protocol",
        Mapping::Refused("librdkafka negotiates the TLS version itself (limit it with 'properties.ssl.cipher.suites' if needed)"),
    ),
];

/// A table's client properties in librdkafka's names, and what the user should be told.
#[derive(Debug, Default)]
pub struct ClientProperties {
    /// `(librdkafka key, value)`, in the order the table's options are sorted.
    pub properties: Vec<(String, String)>,
    /// Notices (a Java property accepted without effect), naming keys only.
    pub notices: Vec<String>,
}

impl ClientProperties {
    /// A librdkafka configuration holding these properties.
    pub fn client_config(&self) -> ClientConfig {
        let mut cfg = ClientConfig::new();
        for (k, v) in &self.properties {
            cfg.set(k, v);
        }
        cfg
    }

    /// Whether librdkafka is given `key` (in its own name).
    pub fn has(&self, key: &str) -> bool {
        self.properties.iter().any(|(k, _)| k == key)
    }
}

/// Maps a table's `properties.*` to librdkafka's and checks them with librdkafka (no I/O).
pub fn client_properties(table: &TableSpec) -> Result<ClientProperties, ConnectorError> {
    let mut out = ClientProperties::default();
    let mut from: Vec<(String, &str)> = Vec::new(); // librdkafka key -> the option it came from
    for (k, v) in &table.options {
        let Some(p) = k.strip_prefix("properties.") else {
            continue;
        };
        let mut push = |key: &str, value: String, out: &mut ClientProperties| {
            from.push((key.to_owned(), k.as_str()));
            out.properties.push((key.to_owned(), value));
        };
        match MAPPINGS.iter().find(|(java, _)| *java == p).map(|(_, m)| m) {
            None => push(p, v.clone(), &mut out),
            Some(Mapping::Rename(to)) => push(to, v.clone(), &mut out),
            Some(Mapping::Convert(f)) => {
                let props = f(v).map_err(|why| table.error(format!("option '{k}': {why}")))?;
                for (key, value) in props {
                    push(key, value, &mut out);
                }
            }
            Some(Mapping::Noted(why)) => out.notices.push(format!(
                "table `{}`: option '{k}' (a Java Kafka client property) has no effect in tillflow: {why}",
                table.name
            )),
            Some(Mapping::Refused(what)) => {
                return Err(table.error(format!(
                    "option '{k}' (a Java Kafka client property) is not supported by librdkafka, tillflow's Kafka client: {what}"
                )))
            }
        }
    }
    // a property given twice (`sasl.username` and a JAAS config naming one) is ambiguous
    for (i, (key, _)) in out.properties.iter().enumerate() {
        if let Some((_, other)) = out.properties[..i]
            .iter()
            .zip(&from)
            .find(|((k, _), _)| k == key)
            .map(|(_, f)| f)
        {
            return Err(table.error(format!(
                "options '{other}' and '{}' both set librdkafka's '{key}': give only one",
                from[i].1
            )));
        }
    }
    // librdkafka checks each property as it is set, without connecting
    if let Err(e) = out.client_config().create_native_config() {
        let origin = |key: &str| {
            from.iter()
                .find(|(k, _)| k == key)
                .map(|(_, o)| (*o).to_owned())
                .unwrap_or_else(|| format!("properties.{key}"))
        };
        return Err(table.error(match e {
            KafkaError::ClientConfig(RDKafkaConfRes::RD_KAFKA_CONF_UNKNOWN, _, key, _) => format!(
                "option '{}': librdkafka (tillflow's Kafka client) has no property '{key}' (its properties: https://github.com/confluentinc/librdkafka/blob/master/CONFIGURATION.md)",
                origin(&key)
            ),
            KafkaError::ClientConfig(_, desc, key, value) => format!(
                "option '{}': librdkafka does not accept its value for '{key}'{} (the value is not shown; see librdkafka's CONFIGURATION.md for what '{key}' takes)",
                origin(&key),
                reason(&desc, &value)
            ),
            other => format!("the Kafka client properties are not accepted: {}", safe_error(&other)),
        }));
    }
    Ok(out)
}

/// librdkafka's reason for refusing a value (`…: OpenSSL not available at build time`), when
/// it can be told without the value.
fn reason(desc: &str, value: &str) -> String {
    match desc.rsplit_once("\": ") {
        Some((_, why))
            if !why.trim().is_empty()
                && !why.contains('"')
                && (value.is_empty() || !why.contains(value)) =>
        {
            format!(": {}", why.trim())
        }
        _ => String::new(),
    }
}

/// A Kafka error as text that never shows a configuration value.
pub fn safe_error(e: &KafkaError) -> String {
    match e {
        KafkaError::ClientConfig(_, _, key, _) => {
            format!("librdkafka rejects property '{key}' (the value is not shown)")
        }
        other => other.to_string(),
    }
}

/// `sasl.jaas.config` with the PLAIN or SCRAM login module: its username and password.
fn jaas(v: &str) -> Converted {
    let text = v.trim();
    let module = text.split_whitespace().next().unwrap_or("");
    let known = ["PlainLoginModule", "ScramLoginModule"];
    if !known.iter().any(|m| module.ends_with(m)) {
        let hint = if module.ends_with("OAuthBearerLoginModule") {
            "for OAUTHBEARER use 'properties.sasl.oauthbearer.method' and the 'properties.sasl.oauthbearer.*' properties"
        } else if module.ends_with("Krb5LoginModule") {
            "for Kerberos use 'properties.sasl.kerberos.service.name', 'properties.sasl.kerberos.keytab' and 'properties.sasl.kerberos.principal'"
        } else {
            "use 'properties.sasl.username' and 'properties.sasl.password'"
        };
        return Err(format!(
            "only the PlainLoginModule and ScramLoginModule JAAS configs map to librdkafka ({hint})"
        ));
    }
    let mut user = None;
    let mut pass = None;
    let mut rest = &text[module.len()..];
    // key="value" pairs; values may hold escaped quotes
    while let Some(eq) = rest.find('=') {
        let key = rest[..eq].split_whitespace().last().unwrap_or("");
        let after = rest[eq + 1..].trim_start();
        let Some(body) = after.strip_prefix('"') else {
            return Err("a JAAS option value is not in double quotes".into());
        };
        let mut value = String::new();
        let mut chars = body.char_indices();
        let mut end = None;
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => {
                    if let Some((_, n)) = chars.next() {
                        value.push(n);
                    }
                }
                '"' => {
                    end = Some(i);
                    break;
                }
                c => value.push(c),
            }
        }
        let Some(end) = end else {
            return Err("a JAAS option value has no closing double quote".into());
        };
        match key {
            "username" => user = Some(value),
            "password" => pass = Some(value),
            _ => {}
        }
        rest = &body[end + 1..];
    }
    match (user, pass) {
        (Some(u), Some(p)) => Ok(vec![("sasl.username", u), ("sasl.password", p)]),
        _ => Err("the JAAS config needs username=\"…\" and password=\"…\"".into()),
    }
}

fn bytes_value(v: &str) -> Result<i64, String> {
    v.trim()
        .parse::<i64>()
        .map_err(|_| "expected a number of bytes".to_owned())
}

/// `buffer.memory` (bytes) → `queue.buffering.max.kbytes`.
fn buffer_memory(v: &str) -> Converted {
    let b = bytes_value(v)?;
    if b <= 0 {
        return Err("expected a positive number of bytes".into());
    }
    Ok(vec![(
        "queue.buffering.max.kbytes",
        ((b + 1023) / 1024).to_string(),
    )])
}

/// A Java socket buffer size (-1: the OS default) → librdkafka's (0: the OS default).
fn socket_buffer(v: &str) -> Result<String, String> {
    let b = bytes_value(v)?;
    Ok(if b < 0 { 0 } else { b }.to_string())
}

fn receive_buffer(v: &str) -> Converted {
    Ok(vec![("socket.receive.buffer.bytes", socket_buffer(v)?)])
}

fn send_buffer(v: &str) -> Converted {
    Ok(vec![("socket.send.buffer.bytes", socket_buffer(v)?)])
}

/// Java assignor class names (or librdkafka's names) → librdkafka's strategies.
fn assignment(v: &str) -> Converted {
    let mut names = Vec::new();
    for part in v.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let short = part.rsplit('.').next().unwrap_or(part);
        names.push(match short {
            "RangeAssignor" | "range" => "range",
            "RoundRobinAssignor" | "roundrobin" => "roundrobin",
            "CooperativeStickyAssignor" | "cooperative-sticky" => "cooperative-sticky",
            _ => {
                return Err(
                    "librdkafka assigns partitions with range, roundrobin or cooperative-sticky (Java's RangeAssignor, RoundRobinAssignor, CooperativeStickyAssignor); other assignors have no counterpart".into(),
                )
            }
        });
    }
    Ok(vec![("partition.assignment.strategy", names.join(","))])
}

/// `auto.offset.reset`: Java's `none` is librdkafka's `error`.
fn offset_reset(v: &str) -> Converted {
    let t = v.trim().to_ascii_lowercase();
    Ok(vec![(
        "auto.offset.reset",
        if t == "none" { "error".into() } else { t },
    )])
}

/// Java's empty `ssl.endpoint.identification.algorithm` turns the check off: librdkafka's `none`.
fn endpoint_identification(v: &str) -> Converted {
    let t = v.trim().to_ascii_lowercase();
    Ok(vec![(
        "ssl.endpoint.identification.algorithm",
        if t.is_empty() { "none".into() } else { t },
    )])
}

/// librdkafka reads PKCS#12 keystores only (and has no type property).
fn keystore_type(v: &str) -> Converted {
    if v.trim().eq_ignore_ascii_case("PKCS12") {
        Ok(vec![])
    } else {
        Err("librdkafka reads PKCS#12 keystores only ('properties.ssl.keystore.location'), or PEM files in 'properties.ssl.certificate.location' and 'properties.ssl.key.location'; convert a JKS keystore with keytool -importkeystore -deststoretype PKCS12".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tillflow_types::Schema;

    const SECRET: &str = "s3cr3t-Pa55";

    fn table(props: &[(&str, &str)]) -> TableSpec {
        TableSpec {
            name: "orders".into(),
            schema: Schema::new(vec![]),
            options: props
                .iter()
                .map(|(k, v)| (format!("properties.{k}"), v.to_string()))
                .collect(),
            primary_key: vec![],
            metadata: vec![],
            partition_keys: vec![],
        }
    }

    fn get<'a>(p: &'a ClientProperties, k: &str) -> Option<&'a str> {
        p.properties
            .iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.as_str())
    }

    #[test]
    fn jaas_config_becomes_username_and_password() {
        let p = client_properties(&table(&[
            ("security.protocol", "SASL_PLAINTEXT"),
            ("sasl.mechanism", "SCRAM-SHA-512"),
            (
                "sasl.jaas.config",
                &format!(r#"org.apache.kafka.common.security.scram.ScramLoginModule required username="app" password="{SECRET}";"#),
            ),
        ]))
        .unwrap();
        assert_eq!(get(&p, "sasl.username"), Some("app"));
        assert_eq!(get(&p, "sasl.password"), Some(SECRET));
        assert!(get(&p, "sasl.jaas.config").is_none());
        let p = client_properties(&table(&[(
            "sasl.jaas.config",
            r#"org.apache.flink.kafka.shaded.org.apache.kafka.common.security.plain.PlainLoginModule required username="u" password="a\"b";"#,
        )]))
        .unwrap();
        assert_eq!(get(&p, "sasl.password"), Some("a\"b"));
    }

    #[test]
    fn java_names_are_renamed_and_converted() {
        let p = client_properties(&table(&[
            ("fetch.max.wait.ms", "250"),
            ("buffer.memory", "33554432"),
            ("max.request.size", "2097152"),
            ("receive.buffer.bytes", "-1"),
            ("send.buffer.bytes", "131072"),
            (
                "partition.assignment.strategy",
                "org.apache.kafka.clients.consumer.CooperativeStickyAssignor",
            ),
            ("auto.offset.reset", "none"),
            ("linger.ms", "5"),
        ]))
        .unwrap();
        assert_eq!(get(&p, "fetch.wait.max.ms"), Some("250"));
        assert_eq!(get(&p, "queue.buffering.max.kbytes"), Some("32768"));
        assert_eq!(get(&p, "message.max.bytes"), Some("2097152"));
        assert_eq!(get(&p, "socket.receive.buffer.bytes"), Some("0"));
        assert_eq!(get(&p, "socket.send.buffer.bytes"), Some("131072"));
        assert_eq!(
            get(&p, "partition.assignment.strategy"),
            Some("cooperative-sticky")
        );
        assert_eq!(get(&p, "auto.offset.reset"), Some("error"));
        assert_eq!(
            endpoint_identification("").unwrap(),
            vec![("ssl.endpoint.identification.algorithm", "none".to_owned())]
        );
        assert_eq!(get(&p, "linger.ms"), Some("5"));
        assert!(p.notices.is_empty());
    }

    #[test]
    fn java_only_properties_are_noted() {
        let p = client_properties(&table(&[
            ("max.poll.records", "500"),
            (
                "key.deserializer",
                "org.apache.kafka.common.serialization.ByteArrayDeserializer",
            ),
        ]))
        .unwrap();
        assert!(p.properties.is_empty());
        assert_eq!(p.notices.len(), 2);
        assert!(p
            .notices
            .iter()
            .any(|n| n.contains("'properties.max.poll.records'") && n.contains("has no effect")));
    }

    #[test]
    fn refusals_name_the_librdkafka_property() {
        let e = client_properties(&table(&[(
            "ssl.truststore.location",
            "/etc/kafka/trust.jks",
        )]))
        .unwrap_err()
        .to_string();
        assert!(e.contains("'properties.ssl.truststore.location'"), "{e}");
        assert!(e.contains("'properties.ssl.ca.location'"), "{e}");
        assert!(!e.contains("trust.jks"), "{e}");
        let e = client_properties(&table(&[("ssl.keystore.type", "JKS")]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("PKCS#12"), "{e}");
    }

    #[test]
    fn librdkafka_checks_names_and_values() {
        let e = client_properties(&table(&[("no.such.thing", SECRET)]))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("option 'properties.no.such.thing': librdkafka (tillflow's Kafka client) has no property 'no.such.thing'"),
            "{e}"
        );
        let e = client_properties(&table(&[("security.protocol", SECRET)]))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("does not accept its value for 'security.protocol'"),
            "{e}"
        );
        assert!(!e.contains(SECRET), "{e}");
        let e = client_properties(&table(&[
            ("sasl.username", "x"),
            (
                "sasl.jaas.config",
                r#"org.apache.kafka.common.security.plain.PlainLoginModule required username="u" password="p";"#,
            ),
        ]))
        .unwrap_err()
        .to_string();
        assert!(e.contains("both set librdkafka's 'sasl.username'"), "{e}");
    }

    #[test]
    fn a_password_never_appears_in_errors_or_notices() {
        let jaas = |m: &str| format!(r#"{m} required username="app" password="{SECRET}";"#);
        let cases: Vec<Vec<(&str, String)>> = vec![
            vec![(
                "sasl.jaas.config",
                jaas("com.sun.security.auth.module.Krb5LoginModule"),
            )],
            vec![(
                "sasl.jaas.config",
                jaas("org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule"),
            )],
            vec![(
                "sasl.jaas.config",
                format!("PlainLoginModule required password={SECRET};"),
            )],
            vec![(
                "sasl.jaas.config",
                format!(r#"PlainLoginModule required password="{SECRET}"#),
            )],
            vec![
                ("sasl.password", SECRET.into()),
                ("sasl.mechanism", SECRET.into()),
            ],
            vec![("ssl.truststore.password", SECRET.into())],
            vec![
                ("ssl.key.password", SECRET.into()),
                ("bogus.key", SECRET.into()),
            ],
            vec![("max.poll.records", SECRET.into())],
            vec![("buffer.memory", SECRET.into())],
            vec![("partition.assignment.strategy", SECRET.into())],
            vec![("ssl.keystore.type", SECRET.into())],
        ];
        for case in cases {
            let props: Vec<(&str, &str)> = case.iter().map(|(k, v)| (*k, v.as_str())).collect();
            match client_properties(&table(&props)) {
                Ok(p) => {
                    for n in &p.notices {
                        assert!(!n.contains(SECRET), "{n}");
                    }
                }
                Err(e) => {
                    let e = e.to_string();
                    assert!(!e.contains(SECRET), "{e}");
                }
            }
        }
    }
}
