use super::*;

fn fixture(name: &str) -> String {
    let path = format!("{}/tests/fixtures/build/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

#[test]
fn gcc_error_and_the_line_after_it_warnings_skipped() {
    let lines = first_errors(&fixture("gcc-error.txt"));
    assert_eq!(
        lines,
        [
            "tools/server/server-context.cpp:9:20: error: expected ';' before 'return'",
            "    9 |     slot.n_gen += 1",
            "ninja: build stopped: subcommand failed.",
        ]
    );
}

#[test]
fn clang_errors_each_with_its_source_line() {
    let lines = first_errors(&fixture("clang-error.txt"));
    assert_eq!(
        lines,
        [
            "/src/llama.cpp/src/llama-sampling.cpp:418:32: error: use of undeclared identifier 'cur_p_size'",
            "  418 |     for (size_t i = 0; i < cur_p_size; ++i) {",
            "/src/llama.cpp/src/llama-sampling.cpp:425:12: error: no member named 'logit_bias' in 'llama_token_data'",
            "  425 |     cur.logit_bias += 1.0f;",
            "ninja: build stopped: subcommand failed.",
        ]
    );
}

#[test]
fn cmake_error_with_its_message_line() {
    let lines = first_errors(&fixture("cmake-configure-error.txt"));
    assert_eq!(
        lines,
        [
            "CMake Error at CMakeLists.txt:5 (find_package):",
            "  By not providing \"FindNoSuchPackage.cmake\" in CMAKE_MODULE_PATH this",
        ]
    );
}

#[test]
fn ninja_failure_from_a_real_c_build() {
    let lines = first_errors(&fixture("ninja-failure.txt"));
    assert_eq!(
        lines,
        [
            "/tmp/fx/proj/util.c:2:13: error: expected ';' before '}' token",
            "    2 |     return 0",
            "ninja: build stopped: subcommand failed.",
        ]
    );
}

#[test]
fn ninja_failed_line_stands_in_when_nothing_else_explains() {
    let text = "[1/2] Generating x\nFAILED: [code=1] gen/x.h\n/bin/false\nninja: build stopped: subcommand failed.\n";
    assert_eq!(
        first_errors(text),
        [
            "FAILED: [code=1] gen/x.h",
            "ninja: build stopped: subcommand failed."
        ]
    );
}

#[test]
fn linker_and_pip_errors() {
    let text = "main.c:(.text+0x9): undefined reference to `util'\n\
                collect2: error: ld returned 1 exit status\n\
                ERROR: Could not find a version that satisfies the requirement torch==9.9\n";
    assert_eq!(first_errors(text).len(), 3);
}

#[test]
fn at_most_max_lines_and_long_lines_clipped() {
    let long = "x".repeat(MAX_LINE_BYTES * 2);
    let mut text = String::new();
    for i in 0..50 {
        text.push_str(&format!("a.c:{i}:1: error: {long}\n    | quote\n"));
    }
    let lines = first_errors(&text);
    assert_eq!(lines.len(), MAX_LINES);
    assert!(lines.iter().all(|l| l.len() <= MAX_LINE_BYTES));
}

#[test]
fn a_following_error_is_not_swallowed_as_a_source_line() {
    let text = "a.c:1:1: error: first\nb.c:2:2: error: second\n";
    assert_eq!(
        first_errors(text),
        ["a.c:1:1: error: first", "b.c:2:2: error: second"]
    );
}

#[test]
fn clean_output_has_no_error_lines() {
    let text = "[1/2] Building C object x.o\n[2/2] Linking C executable hello\n";
    assert!(first_errors(text).is_empty());
}
