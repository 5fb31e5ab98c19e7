//! Workflow commands on a step's stdout/stderr (GHA-SEMANTICS §5.4), following
//! `actions/runner`'s `ActionCommand.TryParseV2`/`TryParse` and `ActionCommandManager`.
//!
//! [`parse_line`] recognises `::name k=v,k=v::data` (after trimming leading whitespace) and the
//! legacy `##[name k=v;k=v]data`; only known command names are commands, anything else is an
//! ordinary output line. [`CommandProcessor`] adds the per-step state: `stop-commands` and
//! `echo`.

use indexmap::IndexMap;

/// Names the runner registers (case-insensitive).
pub const KNOWN_COMMANDS: &[&str] = &[
    "add-mask",
    "add-matcher",
    "add-path",
    "debug",
    "echo",
    "endgroup",
    "error",
    "group",
    "notice",
    "remove-matcher",
    "save-state",
    "set-env",
    "set-output",
    "stop-commands",
    "warning",
];

/// Property map with lower-cased keys (keys are case-insensitive; the last write wins).
pub type Properties = IndexMap<String, String>;

/// A syntactically recognised command, before interpretation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawCommand {
    /// Lower-cased name.
    pub name: String,
    pub properties: Properties,
    pub data: String,
}

fn is_known(name: &str) -> bool {
    KNOWN_COMMANDS.iter().any(|k| k.eq_ignore_ascii_case(name))
}

/// Replaces `%XX` escapes in the order the runner does (`%25` last, so its output is never
/// re-read). Allocates only when the text contains `%`.
fn unescape(s: &str, table: &[(&str, &str)]) -> String {
    if !s.contains('%') {
        return s.to_string();
    }
    let mut out = s.to_string();
    for (from, to) in table {
        if out.contains(from) {
            out = out.replace(from, to);
        }
    }
    out
}

const DATA_ESCAPES: &[(&str, &str)] = &[("%0D", "\r"), ("%0A", "\n"), ("%25", "%")];
const PROPERTY_ESCAPES: &[(&str, &str)] = &[
    ("%0D", "\r"),
    ("%0A", "\n"),
    ("%3A", ":"),
    ("%2C", ","),
    ("%25", "%"),
];
const LEGACY_ESCAPES: &[(&str, &str)] = &[
    ("%3B", ";"),
    ("%0D", "\r"),
    ("%0A", "\n"),
    ("%5D", "]"),
    ("%AZP25", "%"),
];

/// .NET `Split('=', 2, RemoveEmptyEntries)` yielding exactly two parts: leading `=`s are
/// skipped, the key ends at the next `=`, and the value (the rest) must be non-empty.
fn split_property(piece: &str) -> Option<(&str, &str)> {
    let piece = piece.trim_start_matches('=');
    let (k, v) = piece.split_once('=')?;
    if k.is_empty() || v.is_empty() {
        return None;
    }
    Some((k, v))
}

fn parse_properties(text: &str, sep: char, escapes: &[(&str, &str)], into: &mut Properties) {
    for piece in text.split(sep).filter(|p| !p.is_empty()) {
        if let Some((k, v)) = split_property(piece) {
            into.insert(k.to_ascii_lowercase(), unescape(v, escapes));
        }
    }
}

/// Parses a line as a command whose name is accepted by `accept` (the runner's registered
/// commands). Tries the `::` form first, then the legacy `##[` form.
pub fn parse_line_with(line: &str, accept: impl Fn(&str) -> bool) -> Option<RawCommand> {
    parse_v2(line, &accept).or_else(|| parse_legacy(line, &accept))
}

/// Parses a line as one of the [`KNOWN_COMMANDS`].
pub fn parse_line(line: &str) -> Option<RawCommand> {
    parse_line_with(line, is_known)
}

fn parse_v2(line: &str, accept: &dyn Fn(&str) -> bool) -> Option<RawCommand> {
    let msg = line.trim_start();
    let rest = msg.strip_prefix("::")?;
    let end = rest.find("::")?;
    let info = &rest[..end];
    let (name, props) = match info.find(' ') {
        Some(i) => (&info[..i], Some(&info[i + 1..])),
        None => (info, None),
    };
    if !accept(name) {
        return None;
    }
    let mut properties = Properties::new();
    // The runner only reads properties when the space is not the first character.
    if let Some(p) = props.filter(|_| !name.is_empty()) {
        parse_properties(p.trim(), ',', PROPERTY_ESCAPES, &mut properties);
    }
    Some(RawCommand {
        name: name.to_ascii_lowercase(),
        properties,
        data: unescape(&rest[end + 2..], DATA_ESCAPES),
    })
}

fn parse_legacy(line: &str, accept: &dyn Fn(&str) -> bool) -> Option<RawCommand> {
    let start = line.find("##[")?;
    let rb = start + line[start..].find(']')?;
    let info = &line[start + 3..rb];
    let (name, props) = match info.find(' ') {
        Some(i) => (&info[..i], Some(&info[i + 1..])),
        None => (info, None),
    };
    if !accept(name) {
        return None;
    }
    let mut properties = Properties::new();
    if let Some(p) = props.filter(|_| !name.is_empty()) {
        parse_properties(p, ';', LEGACY_ESCAPES, &mut properties);
    }
    Some(RawCommand {
        name: name.to_ascii_lowercase(),
        properties,
        data: unescape(&line[rb + 1..], LEGACY_ESCAPES),
    })
}

/// Annotation severity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    Notice,
    Warning,
    Error,
}

/// `::notice|warning|error file=,line=,endLine=,col=,endColumn=,title=::message`, validated.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Annotation {
    pub message: String,
    /// As written; the step runner makes it workspace-relative.
    pub file: Option<String>,
    pub line: Option<i64>,
    pub end_line: Option<i64>,
    pub col: Option<i64>,
    pub end_column: Option<i64>,
    pub title: Option<String>,
}

fn parse_int(s: Option<&String>) -> Option<i64> {
    s.and_then(|s| s.trim().parse::<i32>().ok()).map(i64::from)
}

impl Annotation {
    /// Builds and validates an annotation (the runner's `ValidateLinesAndColumns`).
    pub fn from_properties(props: &Properties, message: String) -> Annotation {
        let mut line = parse_int(props.get("line"));
        let mut end_line = parse_int(props.get("endline"));
        let mut col = parse_int(props.get("col"));
        let mut end_column = parse_int(props.get("endcolumn"));
        if end_line.is_some() && line.is_none() {
            line = end_line;
        }
        if end_column.is_some() && col.is_none() {
            col = end_column;
        }
        let has_column = col.is_some() || end_column.is_some();
        if line.is_none() && has_column {
            col = None;
            end_column = None;
        }
        if end_line.is_some() && line != end_line && has_column {
            col = None;
            end_column = None;
        }
        if let (Some(l), Some(e)) = (line, end_line)
            && e < l
        {
            line = None;
            end_line = None;
        }
        if let (Some(c), Some(e)) = (col, end_column)
            && e < c
        {
            col = None;
            end_column = None;
        }
        Annotation {
            message,
            file: props.get("file").filter(|f| !f.is_empty()).cloned(),
            line,
            end_line,
            col,
            end_column,
            title: props.get("title").cloned(),
        }
    }
}

/// An interpreted command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Register a secret (already unescaped; may contain newlines).
    AddMask(String),
    Debug(String),
    Annotation(Severity, Annotation),
    Group(String),
    EndGroup,
    /// Stop processing commands until a line `::TOKEN::`. Mask the token when it is longer
    /// than 6 characters.
    StopCommands(String),
    /// The `::TOKEN::` line that resumed processing.
    Resume(String),
    Echo(bool),
    /// Deprecated `::set-output name=x::v`.
    SetOutput {
        name: String,
        value: String,
    },
    /// Deprecated `::save-state name=x::v`.
    SaveState {
        name: String,
        value: String,
    },
    /// `::set-env name=x::v`, only returned when unsecure commands are allowed.
    SetEnv {
        name: String,
        value: String,
    },
    /// `::add-path::dir`, only returned when unsecure commands are allowed.
    AddPath(String),
    /// `::add-matcher::path.json`.
    AddMatcher(String),
    /// `::remove-matcher owner=X::`.
    RemoveMatcher {
        owner: Option<String>,
    },
}

/// The message when `set-env`/`add-path` are used without `ACTIONS_ALLOW_UNSECURE_COMMANDS`.
pub fn unsecure_command_message(name: &str) -> String {
    format!(
        "The `{name}` command is disabled. Please upgrade to using Environment Files or opt into \
         unsecure command execution by setting the `ACTIONS_ALLOW_UNSECURE_COMMANDS` environment \
         variable to `true`. For more information see: \
         https://github.blog/changelog/2020-10-01-github-actions-deprecating-set-env-and-add-path-commands/"
    )
}

/// .NET `bool.TryParse` truthiness, used for `ACTIONS_ALLOW_UNSECURE_COMMANDS`.
pub fn is_true(value: Option<&str>) -> bool {
    value.is_some_and(|v| v.trim().eq_ignore_ascii_case("true"))
}

fn required_name(command: &str, properties: &Properties) -> Result<String, String> {
    match properties.get("name") {
        Some(n) if !n.is_empty() => Ok(n.clone()),
        _ => Err(format!(
            "Required field 'name' is missing in ##[{command}] command."
        )),
    }
}

/// Interprets a parsed command (not `stop-commands`, which the processor handles). `Err` is
/// a failed known command: log it as an error and fail the step.
pub fn interpret(raw: RawCommand, allow_unsecure: bool) -> Result<Command, String> {
    let data = raw.data;
    Ok(match raw.name.as_str() {
        "add-mask" => Command::AddMask(data),
        "debug" => Command::Debug(data),
        "notice" | "warning" | "error" => {
            let sev = match raw.name.as_str() {
                "notice" => Severity::Notice,
                "warning" => Severity::Warning,
                _ => Severity::Error,
            };
            Command::Annotation(sev, Annotation::from_properties(&raw.properties, data))
        }
        "group" => Command::Group(data),
        "endgroup" => Command::EndGroup,
        "echo" => match data.trim().to_ascii_uppercase().as_str() {
            "ON" => Command::Echo(true),
            "OFF" => Command::Echo(false),
            _ => {
                return Err(format!(
                    "Invalid echo command value. Possible values can be: 'on', 'off'. Current value is: '{data}'."
                ));
            }
        },
        "set-output" => Command::SetOutput {
            name: required_name(&raw.name, &raw.properties)?,
            value: data,
        },
        "save-state" => Command::SaveState {
            name: required_name(&raw.name, &raw.properties)?,
            value: data,
        },
        "set-env" | "add-path" if !allow_unsecure => {
            return Err(unsecure_command_message(&raw.name));
        }
        "set-env" => Command::SetEnv {
            name: required_name(&raw.name, &raw.properties)?,
            value: data,
        },
        "add-path" => Command::AddPath(data),
        "add-matcher" => Command::AddMatcher(data),
        "remove-matcher" => Command::RemoveMatcher {
            owner: raw.properties.get("owner").cloned(),
        },
        other => {
            return Err(format!(
                "Can't find command extension for ##[{other}.command]."
            ));
        }
    })
}

/// What to do with one output line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LineAction {
    /// An ordinary line (or commands are stopped): log it as is (masked).
    Print,
    /// A command to carry out. `echo`: text to log for it (already decided from the echo
    /// state), e.g. the line itself or `::add-mask::***`.
    Run {
        command: Command,
        echo: Option<String>,
    },
    /// A known command that failed: log `Unable to process command '…' successfully.` and
    /// `error` as errors and set the step result to failure.
    Failed { error: String, echo: Option<String> },
}

/// Per-step command state: `stop-commands` and `echo`.
#[derive(Debug, Clone)]
pub struct CommandProcessor {
    allow_unsecure: bool,
    echo: bool,
    stop_token: Option<String>,
}

impl CommandProcessor {
    /// `allow_unsecure`: `ACTIONS_ALLOW_UNSECURE_COMMANDS` is true (in the step's env or the
    /// runner's); `step_debug`: step debug is on (echo starts on).
    pub fn new(allow_unsecure: bool, step_debug: bool) -> CommandProcessor {
        CommandProcessor {
            allow_unsecure,
            echo: step_debug,
            stop_token: None,
        }
    }

    /// Whether commands are currently echoed.
    pub fn echo(&self) -> bool {
        self.echo
    }

    /// The token that resumes processing, while stopped.
    pub fn stop_token(&self) -> Option<&str> {
        self.stop_token.as_deref()
    }

    /// Classifies one output line (without its line terminator).
    pub fn process_line(&mut self, line: &str) -> LineAction {
        // Cheap rejection: every command contains "::" or "##[".
        if !line.contains("::") && !line.contains("##[") {
            return LineAction::Print;
        }
        if let Some(token) = &self.stop_token {
            let raw = parse_line_with(line, |n| n.eq_ignore_ascii_case(token));
            return match raw {
                Some(_) => {
                    let token = self.stop_token.take().unwrap_or_default();
                    LineAction::Run {
                        command: Command::Resume(token),
                        echo: Some(line.to_string()),
                    }
                }
                None => LineAction::Print,
            };
        }
        let Some(raw) = parse_line(line) else {
            return LineAction::Print;
        };
        if raw.name == "stop-commands" {
            let token = raw.data;
            let invalid =
                token.is_empty() || is_known(&token) || token.eq_ignore_ascii_case("pause-logging");
            if invalid && !self.allow_unsecure {
                return LineAction::Failed {
                    error: "Invalid stop-commands token: it must not be empty, a command name \
                            or 'pause-logging'. Set ACTIONS_ALLOW_UNSECURE_COMMANDS to true to \
                            allow it."
                        .to_string(),
                    echo: Some(line.to_string()),
                };
            }
            self.stop_token = Some(token.clone());
            return LineAction::Run {
                command: Command::StopCommands(token),
                echo: Some(line.to_string()),
            };
        }
        let omit_echo = matches!(
            raw.name.as_str(),
            "add-mask" | "debug" | "error" | "warning" | "notice"
        );
        let echo_line = (self.echo && !omit_echo).then(|| line.to_string());
        match interpret(raw, self.allow_unsecure) {
            Ok(command) => {
                let echo = match &command {
                    Command::AddMask(v) if self.echo && !v.trim().is_empty() => {
                        Some("::add-mask::***".to_string())
                    }
                    _ => echo_line,
                };
                if let Command::Echo(on) = command {
                    self.echo = on;
                }
                LineAction::Run { command, echo }
            }
            Err(error) => LineAction::Failed {
                error,
                echo: echo_line,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn props(pairs: &[(&str, &str)]) -> Properties {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn parse_v2_basic() {
        let c = parse_line("  ::WARNING File=app.js,line=100,col=20::Hello warning!").unwrap();
        assert_eq!(c.name, "warning");
        assert_eq!(
            c.properties,
            props(&[("file", "app.js"), ("line", "100"), ("col", "20")])
        );
        assert_eq!(c.data, "Hello warning!");
        assert_eq!(parse_line("::endgroup::").unwrap().data, "");
        assert_eq!(parse_line("::debug::a::b").unwrap().data, "a::b");
        // unknown names and non-commands
        assert_eq!(parse_line("::unknown::x"), None);
        assert_eq!(parse_line("x ::debug::x"), None);
        assert_eq!(parse_line("::debug"), None);
        assert_eq!(parse_line(":: debug::x"), None);
    }

    #[test]
    fn escapes() {
        let c = parse_line("::error title=a%3Ab%2Cc%25%0A,file=x%2C::l1%0Al2%0D%25 %3A %2C %250A")
            .unwrap();
        assert_eq!(c.properties["title"], "a:b,c%\n");
        assert_eq!(c.properties["file"], "x,");
        assert_eq!(c.data, "l1\nl2\r% %3A %2C %0A");
        // lower-case escapes are not escapes
        assert_eq!(parse_line("::debug::%0a").unwrap().data, "%0a");
    }

    #[test]
    fn properties_edge_cases() {
        let c = parse_line("::set-output name=a=b,,empty=,=v, sp=1 ::d").unwrap();
        assert_eq!(c.properties, props(&[("name", "a=b"), (" sp", "1")]));
        let c = parse_line("::set-output NAME=x,Name=y::d").unwrap();
        assert_eq!(c.properties, props(&[("name", "y")]));
        let c = parse_line("::set-output ==k=v::d").unwrap();
        assert_eq!(c.properties, props(&[("k", "v")]));
    }

    #[test]
    fn legacy_form() {
        let c = parse_line("prefix ##[set-output name=x%3By;other=1]va%5Dl%AZP25").unwrap();
        assert_eq!(c.name, "set-output");
        assert_eq!(c.properties, props(&[("name", "x;y"), ("other", "1")]));
        assert_eq!(c.data, "va]l%");
        assert_eq!(parse_line("##[nope]x"), None);
        assert_eq!(parse_line("##[group]Title").unwrap().data, "Title");
    }

    #[test]
    fn annotation_validation() {
        let a = |p: &[(&str, &str)]| Annotation::from_properties(&props(p), "m".into());
        let x = a(&[("file", "app.js"), ("line", "100"), ("col", "20")]);
        assert_eq!(
            (x.line, x.col, x.file.as_deref()),
            (Some(100), Some(20), Some("app.js"))
        );
        // endLine without line becomes line
        let x = a(&[("endline", "5")]);
        assert_eq!((x.line, x.end_line), (Some(5), Some(5)));
        // columns without line dropped
        let x = a(&[("col", "3"), ("endcolumn", "4")]);
        assert_eq!((x.col, x.end_column), (None, None));
        // columns dropped when line != endLine
        let x = a(&[("line", "1"), ("endline", "2"), ("col", "3")]);
        assert_eq!((x.line, x.end_line, x.col), (Some(1), Some(2), None));
        // end before start drops the pair
        let x = a(&[("line", "5"), ("endline", "2")]);
        assert_eq!((x.line, x.end_line), (None, None));
        let x = a(&[("line", "5"), ("col", "9"), ("endcolumn", "2")]);
        assert_eq!((x.line, x.col, x.end_column), (Some(5), None, None));
        // not numbers
        let x = a(&[("line", "abc"), ("title", "T")]);
        assert_eq!((x.line, x.title.as_deref()), (None, Some("T")));
    }

    #[test]
    fn interpret_commands() {
        let i = |l: &str, allow| interpret(parse_line(l).unwrap(), allow);
        assert_eq!(
            i("::set-output name=zoo::zar", false),
            Ok(Command::SetOutput {
                name: "zoo".into(),
                value: "zar".into()
            })
        );
        assert!(
            i("::set-output::zar", false)
                .unwrap_err()
                .contains("'name'")
        );
        assert!(
            i("::set-env name=foo::bar", false)
                .unwrap_err()
                .contains("ACTIONS_ALLOW_UNSECURE_COMMANDS")
        );
        assert!(i("::add-path::/zip", false).is_err());
        assert_eq!(
            i("::set-env name=foo::bar", true),
            Ok(Command::SetEnv {
                name: "foo".into(),
                value: "bar".into()
            })
        );
        assert_eq!(
            i("::add-path::/zip", true),
            Ok(Command::AddPath("/zip".into()))
        );
        assert_eq!(i("::echo::ON ", false), Ok(Command::Echo(true)));
        assert!(i("::echo::maybe", false).is_err());
        assert_eq!(
            i("::remove-matcher owner=eslint::", false),
            Ok(Command::RemoveMatcher {
                owner: Some("eslint".into())
            })
        );
        assert!(matches!(
            i("::error file=app.js,line=100,col=30::Hello error!", false),
            Ok(Command::Annotation(
                Severity::Error,
                Annotation {
                    line: Some(100),
                    ..
                }
            ))
        ));
        assert!(is_true(Some(" True ")) && !is_true(Some("1")) && !is_true(None));
    }

    #[test]
    fn processor_stop_commands_and_echo() {
        let mut p = CommandProcessor::new(false, false);
        assert_eq!(p.process_line("plain output"), LineAction::Print);
        assert!(matches!(
            p.process_line("::group::G"),
            LineAction::Run {
                command: Command::Group(_),
                echo: None
            }
        ));
        assert!(matches!(
            p.process_line("::stop-commands::my-end-token"),
            LineAction::Run { command: Command::StopCommands(t), echo: Some(_) } if t == "my-end-token"
        ));
        assert_eq!(p.stop_token(), Some("my-end-token"));
        assert_eq!(p.process_line("::set-env name=foo::baz"), LineAction::Print);
        assert_eq!(p.process_line("::debug::x"), LineAction::Print);
        assert!(matches!(
            p.process_line("  ::MY-END-TOKEN::"),
            LineAction::Run {
                command: Command::Resume(_),
                echo: Some(_)
            }
        ));
        assert!(matches!(
            p.process_line("::set-env name=foo::baz"),
            LineAction::Failed { .. }
        ));

        // invalid tokens
        for bad in [
            "::stop-commands::",
            "::stop-commands::debug",
            "::stop-commands::pause-logging",
        ] {
            assert!(
                matches!(p.process_line(bad), LineAction::Failed { .. }),
                "{bad}"
            );
        }
        assert_eq!(p.stop_token(), None);

        // echo on: non-omitted commands echoed, add-mask echoed masked
        assert!(matches!(
            p.process_line("::echo::on"),
            LineAction::Run {
                command: Command::Echo(true),
                echo: None
            }
        ));
        assert!(p.echo());
        assert_eq!(
            p.process_line("::group::G"),
            LineAction::Run {
                command: Command::Group("G".into()),
                echo: Some("::group::G".into())
            }
        );
        assert_eq!(
            p.process_line("::add-mask::s3cret"),
            LineAction::Run {
                command: Command::AddMask("s3cret".into()),
                echo: Some("::add-mask::***".into())
            }
        );
        assert!(matches!(
            p.process_line("::warning::w"),
            LineAction::Run { echo: None, .. }
        ));
        assert!(matches!(
            p.process_line("::echo::off"),
            LineAction::Run {
                command: Command::Echo(false),
                echo: Some(_)
            }
        ));
        let mut p = CommandProcessor::new(true, true);
        assert!(p.echo());
        assert!(matches!(
            p.process_line("::stop-commands::debug"),
            LineAction::Run {
                command: Command::StopCommands(_),
                ..
            }
        ));
    }
}
