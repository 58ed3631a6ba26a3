//! docs/protocol.md says what the code does about errors: the errno table
//! (§8) is `ErrorCode`, the table of errors by request (§8.1) is
//! `REQUEST_ERRORS`, and no request's section names an errno that request
//! cannot get. (Debug builds check every error reply against
//! `REQUEST_ERRORS`, so the table is also what the server sends.)

use std::collections::BTreeSet;

use chatcore::protocol::{ErrorCode, GENERAL_ERRORS, REQUEST_ERRORS};

fn protocol_md() -> String {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/protocol.md");
    std::fs::read_to_string(path).expect("read docs/protocol.md")
}

/// The lines of the section whose heading starts with `heading`, up to the
/// next heading of the same or a higher level.
fn section<'a>(doc: &'a str, heading: &str) -> Vec<&'a str> {
    let level = heading.chars().take_while(|c| *c == '#').count();
    let mut lines = doc.lines().skip_while(|l| !l.starts_with(heading));
    let first = lines
        .next()
        .unwrap_or_else(|| panic!("no section {heading:?}"));
    let mut out = vec![first];
    for line in lines {
        let hashes = line.chars().take_while(|c| *c == '#').count();
        if hashes > 0 && hashes <= level && line[hashes..].starts_with(' ') {
            break;
        }
        out.push(line);
    }
    out
}

fn errnos(codes: &[ErrorCode]) -> String {
    let mut numbers: Vec<u32> = codes.iter().map(|c| c.errno()).collect();
    numbers.sort_unstable();
    if numbers.is_empty() {
        return "none".to_string();
    }
    numbers
        .iter()
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// §8.1 as the code says it should read.
fn expected_table() -> String {
    let mut out =
        String::from("| msgid | request | errors particular to it |\n| --- | --- | --- |\n");
    for (id, name, codes) in REQUEST_ERRORS {
        out.push_str(&format!("| {id} | `{name}` | {} |\n", errnos(codes)));
    }
    out
}

#[test]
fn the_table_of_errors_by_request_is_the_codes() {
    let doc = protocol_md();
    let lines = section(&doc, "### 8.1 ");
    let table: String = lines
        .iter()
        .filter(|l| l.starts_with('|'))
        .map(|l| format!("{l}\n"))
        .collect();
    let expected = expected_table();
    assert_eq!(
        table, expected,
        "docs/protocol.md §8.1 differs from chatcore::protocol::REQUEST_ERRORS; \
         it should read:\n\n{expected}"
    );
    let general = format!("every request may also get {}", errnos(&GENERAL_ERRORS));
    let prose = lines
        .join(" ")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    assert!(
        prose.to_lowercase().contains(&general.to_lowercase()),
        "§8.1 should say \"{general}\" (GENERAL_ERRORS)"
    );
}

#[test]
fn the_errno_table_is_every_error_code_with_its_name_and_message() {
    let doc = protocol_md();
    let mut documented = BTreeSet::new();
    // The table of §8 itself, not §8.1's.
    for line in section(&doc, "## 8. ")
        .into_iter()
        .take_while(|l| !l.starts_with("### "))
    {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        // | errno | name | `errmsg` | when |
        let Some(errno) = cells.get(1).and_then(|c| c.parse::<u32>().ok()) else {
            continue;
        };
        let code = ErrorCode::from_errno(errno)
            .unwrap_or_else(|| panic!("§8 lists errno {errno}, which the code does not have"));
        assert_eq!(cells[2], format!("{code:?}"), "name of errno {errno}");
        assert_eq!(
            cells[3],
            format!("`{}`", code.message()),
            "default errmsg of errno {errno}"
        );
        assert!(documented.insert(errno), "§8 lists errno {errno} twice");
    }
    for code in ErrorCode::ALL {
        assert!(
            documented.contains(&code.errno()),
            "§8 lacks errno {} ({code:?})",
            code.errno()
        );
    }
}

/// The leading numbers of a comma-separated list after "Errors:", e.g.
/// "Errors: 16 (this connection...), 21, 20 (name taken), 30." gives
/// 16, 21, 20, 30; numbers inside the parentheses are not errnos.
fn listed_errnos(paragraph: &str) -> Vec<u32> {
    let mut found = Vec::new();
    let lower = paragraph.to_lowercase();
    let mut rest = lower.as_str();
    while let Some(at) = rest.find("errors:") {
        rest = &rest[at + "errors:".len()..];
        let mut depth = 0usize;
        let mut item_start = true;
        let mut number = String::new();
        for c in rest.chars() {
            match c {
                '(' => depth += 1,
                ')' => depth = depth.saturating_sub(1),
                _ => {}
            }
            if depth == 0 && item_start && c.is_ascii_digit() {
                number.push(c);
                continue;
            }
            if !number.is_empty() {
                found.push(number.parse().expect("digits"));
                number.clear();
            }
            if depth == 0 {
                match c {
                    ',' => item_start = true,
                    c if c.is_whitespace() || c == '-' => {}
                    '.' => break,
                    _ => item_start = false,
                }
            }
        }
        if !number.is_empty() {
            found.push(number.parse().expect("digits"));
        }
    }
    found
}

#[test]
fn a_requests_section_names_only_errors_that_request_can_get() {
    let doc = protocol_md();
    let headings: Vec<&str> = doc
        .lines()
        .filter(|l| l.starts_with("### 4.") && !l.starts_with("### 4.0"))
        .collect();
    assert!(headings.len() > 10, "§4 has a section per request");
    for heading in headings {
        // "### 4.3 `ONE_CHAT` (5) and `GROUP_CHAT` (9): send a message"
        let ids: Vec<u32> = heading
            .split('(')
            .skip(1)
            .filter_map(|part| part.split(')').next()?.parse().ok())
            .collect();
        assert!(!ids.is_empty(), "no msgid in {heading:?}");
        let allowed: BTreeSet<u32> = GENERAL_ERRORS
            .iter()
            .chain(
                REQUEST_ERRORS
                    .iter()
                    .filter(|(id, ..)| ids.contains(id))
                    .flat_map(|(_, _, codes)| codes.iter()),
            )
            .map(|c| c.errno())
            .collect();
        let text = section(&doc, heading).join("\n");
        for paragraph in text.split("\n\n") {
            for errno in listed_errnos(paragraph) {
                assert!(
                    allowed.contains(&errno),
                    "{heading:?} lists errno {errno}, which none of its requests gets \
                     (REQUEST_ERRORS and §8.1 say {allowed:?})"
                );
            }
        }
    }
}

#[test]
fn listed_errnos_reads_the_lists_and_skips_what_is_in_parentheses() {
    assert_eq!(
        listed_errnos(
            "Errors: 16 (this connection is\nalready logged in), 21, 20 (name taken), 30."
        ),
        vec![16, 21, 20, 30]
    );
    assert_eq!(
        listed_errnos("Errors: 12, 21 (`name` empty or longer than 64 characters)."),
        vec![12, 21]
    );
    assert_eq!(listed_errnos("Errors:\n\n- 12 if both"), vec![12]);
    assert_eq!(listed_errnos("no list here, 5 of them"), Vec::<u32>::new());
}
