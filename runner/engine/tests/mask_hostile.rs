//! Secret masking against hostile values and hostile chunking.

use std::sync::Arc;

use base64::Engine as _;
use gantry_engine::masker::{MaskedLines, Masker, MaskingWriter, SegmentKind};

fn b64(s: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(s)
}

fn masker(secrets: &[&str]) -> Arc<Masker> {
    let m = Arc::new(Masker::new());
    m.add_secrets(secrets.iter().copied());
    m
}

/// Streams `chunks` through MaskedLines; returns the masked lines joined with '\n' (plus
/// '\n' after each complete line) and the kinds seen.
fn through_lines(m: &Arc<Masker>, chunks: &[&[u8]], max_line: usize) -> (String, Vec<SegmentKind>) {
    let mut ml = MaskedLines::with_max_line(m.clone(), max_line);
    let mut out = Vec::new();
    let mut kinds = Vec::new();
    let mut f = |s: gantry_engine::masker::Segment<'_>| {
        out.extend_from_slice(s.masked);
        if s.kind != SegmentKind::Partial {
            out.push(b'\n');
        }
        kinds.push(s.kind);
    };
    for c in chunks {
        ml.push(c, &mut f);
    }
    ml.finish(&mut f);
    (String::from_utf8(out).unwrap(), kinds)
}

fn through_writer(m: &Arc<Masker>, chunks: &[&[u8]], max_line: usize) -> String {
    use std::io::Write;
    let mut w = MaskingWriter::with_max_line(m.clone(), Vec::new(), max_line);
    for c in chunks {
        w.write_all(c).unwrap();
    }
    String::from_utf8(w.finish().unwrap()).unwrap()
}

#[test]
fn empty_and_blank_secrets_are_ignored() {
    let m = masker(&["", "   ", "\n\n"]);
    assert!(m.snapshot().is_empty());
    assert!(!m.add_mask(""));
    assert!(!m.add_mask(" \t"));
    assert_eq!(m.mask_line("nothing to hide"), "nothing to hide");
    assert!(matches!(m.mask_line("x"), std::borrow::Cow::Borrowed(_)));
}

#[test]
fn regex_metacharacters_are_literal() {
    let m = masker(&["a.*b", "$(x)", "\\", "[^]+?"]);
    assert_eq!(m.mask_line("1 a.*b 2"), "1 *** 2");
    assert_eq!(m.mask_line("aXXXb"), "aXXXb");
    assert_eq!(m.mask_line("echo $(x)"), "echo ***");
    assert_eq!(m.mask_line("C:\\dir"), "C:***dir");
    assert_eq!(m.mask_line("r[^]+?"), "r***");
}

#[test]
fn unicode_secrets() {
    let m = masker(&["pässwörd", "日本語シークレット"]);
    assert_eq!(m.mask_line("pw=pässwörd!"), "pw=***!");
    assert_eq!(m.mask_line("«日本語シークレット»"), "«***»");
    // URI-escaped form
    assert_eq!(m.mask_line("u=p%C3%A4ssw%C3%B6rd"), "u=***");
}

#[test]
fn prefix_and_overlapping_secrets_hide_the_union() {
    let m = masker(&["abc", "abcdef"]);
    assert_eq!(m.mask_line("xx abcdef yy"), "xx *** yy");
    assert_eq!(m.mask_line("abcxyz"), "***xyz");
    let m = masker(&["abcd", "cdef"]);
    assert_eq!(m.mask_line("-abcdef-"), "-***-");
    assert_eq!(m.mask_line("abcdabcd"), "***");
    let m = masker(&["aaa"]);
    assert_eq!(m.mask_line("aaaaa b aaa"), "*** b ***");
}

#[test]
fn multi_line_secrets_mask_each_line() {
    let m = masker(&[
        "  -----BEGIN KEY-----\nMIIEvQIBADANBg\r\n  kqhkiG9w0BAQEF  \n-----END KEY-----\n",
    ]);
    let text = "-----BEGIN KEY-----\nMIIEvQIBADANBg\nkqhkiG9w0BAQEF\n-----END KEY-----\n";
    let (out, _) = through_lines(&m, &[text.as_bytes()], 1 << 16);
    assert_eq!(out, "***\n***\n***\n***\n");
    assert!(m.contains_secret("xx MIIEvQIBADANBg"));
    assert!(!m.contains_secret("nothing"));
}

#[test]
fn encoded_forms() {
    let m = masker(&["pa\"ss\\wo'rd<&>"]);
    assert_eq!(m.mask_line(r#"{"p":"pa\"ss\\wo'rd<&>"}"#), r#"{"p":"***"}"#);
    assert_eq!(
        m.mask_line("x=pa&quot;ss\\wo&apos;rd&lt;&amp;&gt;"),
        "x=***"
    );
    assert_eq!(m.mask_line("'pa\"ss\\wo''rd<&>'"), "'***'");
    assert_eq!(m.mask_line("-e \"P=pa\\\"ss\\wo'rd<&>\""), "-e \"P=***\"");
    assert_eq!(m.mask_line("pa%22ss%5Cwo%27rd%3C%26%3E"), "***");
    let full = b64("pa\"ss\\wo'rd<&>".as_bytes());
    assert_eq!(m.mask_line(&format!("b64 {full} end")), "b64 *** end");
}

#[test]
fn base64_of_add_mask_value_at_every_alignment() {
    let m = Arc::new(Masker::new());
    assert!(m.add_mask("supersecret1"));
    for prefix in ["", "u", "us", "use", "user:", "username:", "xyz"] {
        for suffix in ["", "\n", "@host", "x"] {
            let enc = b64(format!("{prefix}supersecret1{suffix}").as_bytes());
            let masked = m.mask_line(&enc).into_owned();
            assert!(
                masked.contains("***"),
                "{prefix:?}+{suffix:?}: {enc} -> {masked}"
            );
            // At most a couple of boundary characters of the encoded secret survive.
            assert!(masked.len() <= enc.len() - 10, "{enc} -> {masked}");
        }
    }
    // The conformance case: add-mask of base64 text, then that text printed.
    let m = Arc::new(Masker::new());
    m.add_mask("YWJjCg==");
    assert_eq!(m.mask_line("YWJjCg=="), "***");
}

#[test]
fn split_across_chunks_at_every_offset() {
    let m = masker(&["s3cr3t-v@lue", "tok"]);
    let text =
        "prefix s3cr3t-v@lue suffix\r\nnext s3cr3t-v@lue\n\ntok tok\nno newline s3cr3t-v@lue";
    let expected_lines = "prefix *** suffix\nnext ***\n\n*** ***\nno newline ***\n";
    let expected_writer = "prefix *** suffix\r\nnext ***\n\n*** ***\nno newline ***";
    let bytes = text.as_bytes();
    for i in 0..=bytes.len() {
        for j in i..=bytes.len() {
            let chunks = [&bytes[..i], &bytes[i..j], &bytes[j..]];
            assert_eq!(
                through_lines(&m, &chunks, 1 << 16).0,
                expected_lines,
                "split {i},{j}"
            );
            assert_eq!(
                through_writer(&m, &chunks, 1 << 16),
                expected_writer,
                "split {i},{j}"
            );
        }
    }
    let singles: Vec<&[u8]> = bytes.chunks(1).collect();
    assert_eq!(through_lines(&m, &singles, 1 << 16).0, expected_lines);
    assert_eq!(through_writer(&m, &singles, 1 << 16), expected_writer);
}

#[test]
fn overlong_lines_never_leak_a_straddling_secret() {
    let secret = "0123456789ABCDEF";
    let m = masker(&[secret]);
    // Secrets at every offset modulo the bound, separated by filler.
    let mut line = String::new();
    for k in 0..40 {
        line.push_str(&"x".repeat(k % 23 + 1));
        line.push_str(secret);
    }
    line.push_str("end");
    let expected = m.mask_line(&line).into_owned();
    assert!(!expected.contains(secret));
    let text = format!("{line}\nnext\n");
    for max_line in [17, 20, 33, 64, 100] {
        for chunk in [1, 3, 7, 16, 17, 50, 4096] {
            let chunks: Vec<&[u8]> = text.as_bytes().chunks(chunk).collect();
            let (out, kinds) = through_lines(&m, &chunks, max_line);
            assert_eq!(
                out,
                format!("{expected}\nnext\n"),
                "max {max_line} chunk {chunk}"
            );
            if chunk < line.len() {
                // The line arrived in pieces longer than the bound: emitted in pieces.
                assert!(kinds.contains(&SegmentKind::Partial));
                assert_eq!(kinds[kinds.len() - 2], SegmentKind::End);
            } else {
                assert_eq!(kinds, [SegmentKind::Line, SegmentKind::Line]);
            }
            assert_eq!(kinds[kinds.len() - 1], SegmentKind::Line);
            let w = through_writer(&m, &chunks, max_line);
            assert_eq!(
                w,
                format!("{expected}\nnext\n"),
                "writer max {max_line} chunk {chunk}"
            );
        }
    }
}

#[test]
fn add_mask_applies_from_the_next_line_in_the_same_chunk() {
    let m = Arc::new(Masker::new());
    let mut ml = MaskedLines::new(m.clone());
    let mut out = Vec::new();
    let chunk = b"before hidden-val\n::add-mask::hidden-val\nafter hidden-val\n";
    ml.push(chunk, &mut |s| {
        let raw = std::str::from_utf8(s.raw).unwrap();
        if let Some(v) = raw.strip_prefix("::add-mask::") {
            m.add_mask(v);
        } else {
            out.push(String::from_utf8(s.masked.to_vec()).unwrap());
        }
    });
    assert_eq!(out, vec!["before hidden-val", "after ***"]);
}

#[test]
fn shared_across_threads() {
    let m = Arc::new(Masker::new());
    let handles: Vec<_> = (0..4)
        .map(|t| {
            let m = m.clone();
            std::thread::spawn(move || {
                for i in 0..50 {
                    let v = format!("thread{t}-secret{i}");
                    m.add_secret(&v);
                    assert_eq!(m.mask_line(&format!("[{v}]")), "[***]");
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    assert_eq!(m.mask_line("thread3-secret49"), "***");
}

#[test]
fn more_encoders() {
    let m = masker(&["\"quoted-secret\"", "abcdefgh&&ijklmnop", "ctl\u{1}x"]);
    // surrounding double quotes trimmed (values longer than 8)
    assert_eq!(m.mask_line("v=quoted-secret"), "v=***");
    // PowerShell `&` sections of at least 6 characters
    assert_eq!(m.mask_line("abcdefgh | ijklmnop"), "*** | ***");
    // JSON \u escapes of control characters
    assert_eq!(m.mask_line("j=ctl\\u0001x"), "j=***");
}

#[test]
fn layers_after_many_add_masks() {
    let m = Arc::new(Masker::new());
    m.add_secret("abcd-base-secret");
    for i in 0..300 {
        assert!(m.add_mask(&format!("mask-{i}-{}", i * 7919)));
    }
    m.add_mask("secret-cdef");
    for i in (0..300).step_by(37) {
        let v = format!("mask-{i}-{}", i * 7919);
        assert_eq!(m.mask_line(&format!("<{v}>")), "<***>");
        assert_eq!(m.mask_line(&b64(v.as_bytes())), "***");
    }
    // Overlap between a value of the first layer and a recent one: the union is hidden.
    m.add_mask("base-secret-cdef");
    assert_eq!(m.mask_line("x abcd-base-secret-cdef y"), "x *** y");
    let (out, _) = through_lines(&m, &[b"1 mask-299-2367781\n2 abcd-base-secret\n"], 1 << 16);
    assert_eq!(out, "1 ***\n2 ***\n");
}
