//! Masker throughput report (not a timed assertion; speed targets live in bench/).
//! Run: `cargo test --release -p gantry-engine --test mask_throughput -- --ignored --nocapture`
//! Size: `GANTRY_MASK_MB` (default 100).

use std::io::Write;
use std::sync::Arc;
use std::time::Instant;

use gantry_engine::masker::{MaskedLines, Masker, MaskingWriter};

/// 100-byte lines of printable pseudo-random text; every 1000th line holds a secret.
fn synthetic(total: usize, secrets: &[String]) -> Vec<u8> {
    let mut out = Vec::with_capacity(total + 128);
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut n = 0usize;
    while out.len() < total {
        let start = out.len();
        if n % 1000 == 999 {
            out.extend_from_slice(b"token: ");
            out.extend_from_slice(secrets[n / 1000 % secrets.len()].as_bytes());
            out.push(b' ');
        }
        while out.len() - start < 99 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            out.push(
                b" abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789:/.-_"
                    [(x % 68) as usize],
            );
        }
        out.push(b'\n');
        n += 1;
    }
    out
}

#[test]
#[ignore]
fn masker_throughput() {
    let mb: usize = std::env::var("GANTRY_MASK_MB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100);
    let secrets: Vec<String> = (0..20)
        .map(|i| format!("S3cr3t-{i:02}-{}", "qwXz".repeat(i % 4 + 2)))
        .collect();
    let m = Arc::new(Masker::new());
    m.add_secrets(secrets.iter().map(String::as_str));
    let data = synthetic(mb << 20, &secrets);
    let chunks = || data.chunks(64 * 1024);

    let t = Instant::now();
    let mut sink = Vec::with_capacity(data.len());
    for c in chunks() {
        sink.write_all(c).unwrap();
    }
    let copy = t.elapsed();
    let copy_len = sink.len();

    let t = Instant::now();
    let mut w = MaskingWriter::new(m.clone(), Vec::with_capacity(data.len()));
    for c in chunks() {
        w.write_all(c).unwrap();
    }
    let out = w.finish().unwrap();
    let writer = t.elapsed();

    let t = Instant::now();
    let mut ml = MaskedLines::new(m.clone());
    let mut lines_out = Vec::with_capacity(data.len());
    for c in chunks() {
        ml.push(c, &mut |s| {
            lines_out.extend_from_slice(s.masked);
            lines_out.push(b'\n');
        });
    }
    ml.finish(&mut |s| lines_out.extend_from_slice(s.masked));
    let lines = t.elapsed();

    for s in &secrets {
        assert!(memchr::memmem::find(&out, s.as_bytes()).is_none());
        assert!(memchr::memmem::find(&lines_out, s.as_bytes()).is_none());
    }
    assert!(out.len() < copy_len);
    let rate = |d: std::time::Duration| data.len() as f64 / 1e6 / d.as_secs_f64();
    eprintln!(
        "{} MB, {} forms: copy {:.0} MB/s, MaskingWriter {:.0} MB/s, MaskedLines {:.0} MB/s",
        data.len() >> 20,
        m.snapshot().len(),
        rate(copy),
        rate(writer),
        rate(lines)
    );
}
