fn main() {
    for p in std::env::args().skip(1) {
        let text = std::fs::read_to_string(&p).unwrap();
        let l = gantry_workflow::parse_workflow(&p, &text);
        for d in &l.diagnostics {
            println!(
                "{}:{}:{}: {}: {}",
                p.rsplit('/').next().unwrap(),
                d.span.line,
                d.span.col,
                d.severity.as_str(),
                d.message
            );
        }
    }
}
