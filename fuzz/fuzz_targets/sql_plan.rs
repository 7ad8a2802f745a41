//! Parsing and planning a script never panics nor overflows the stack: it plans, or says why
//! not.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let script = format!(
        "CREATE TABLE t (event_time TIMESTAMP(3), store_id INT, sku STRING, qty INT, price DOUBLE,
           WATERMARK FOR event_time AS event_time - INTERVAL '5' SECOND)
         WITH ('connector' = 'datagen', 'number-of-rows' = '1');
         {text}"
    );
    let _ = tillflow_sql::session::Session::new().execute_script(&script, &Default::default());
});
