//! Unit tests of the diff reader: every header form git and `diff -u` write, names as
//! `git apply -p1` reads them, malformed input naming its line, and property tests that no
//! input (arbitrary, diff-shaped, or a mutated valid diff) panics.

use super::*;
use proptest::prelude::*;

const MODIFY: &str = "\
diff --git a/src/main.c b/src/main.c
index 83db48f..bf269f4 100644
--- a/src/main.c
+++ b/src/main.c
@@ -1,4 +1,5 @@
 int main(void) {
-    return 1;
+    int x = 0;
+    return x;
 }
 
@@ -10,2 +11,3 @@ static void g(void)
 a
+b
 c
";

#[test]
fn git_modify_reads_paths_lines_and_numbers() {
    let d = parse(MODIFY).unwrap();
    assert_eq!(d.files.len(), 1);
    let f = &d.files[0];
    assert_eq!(f.old_path.as_deref(), Some("src/main.c"));
    assert_eq!(f.new_path.as_deref(), Some("src/main.c"));
    assert_eq!(f.kind, Kind::Modify);
    assert_eq!((f.old_mode, f.new_mode), (Some(0o100644), Some(0o100644)));
    assert!(!f.binary);
    assert_eq!(f.removed, 1);
    let added: Vec<(u64, &str)> = f
        .added
        .iter()
        .map(|a| (a.new_line, a.text.as_str()))
        .collect();
    assert_eq!(
        added,
        vec![(2, "    int x = 0;"), (3, "    return x;"), (12, "b")]
    );
    assert_eq!(d.changed_lines(), 4);
    assert_eq!(d.bytes, MODIFY.len());
    assert_eq!(f.line, 1);
}

#[test]
fn new_deleted_renamed_and_mode_changes() {
    let text = "\
diff --git a/new.txt b/new.txt
new file mode 100755
index 0000000..e69de29
--- /dev/null
+++ b/new.txt
@@ -0,0 +1,2 @@
+#!/bin/sh
+echo hi
diff --git a/old.txt b/old.txt
deleted file mode 100644
index e69de29..0000000
--- a/old.txt
+++ /dev/null
@@ -1 +0,0 @@
-bye
diff --git a/from.c b/to.c
similarity index 90%
rename from from.c
rename to to.c
index 1111111..2222222 100644
--- a/from.c
+++ b/to.c
@@ -1 +1 @@
-x
+y
diff --git a/run.sh b/run.sh
old mode 100644
new mode 100755
diff --git a/link b/link
new file mode 120000
index 0000000..1234567
--- /dev/null
+++ b/link
@@ -0,0 +1 @@
+/etc/passwd
\\ No newline at end of file
";
    let d = parse(text).unwrap();
    let kinds: Vec<Kind> = d.files.iter().map(|f| f.kind).collect();
    assert_eq!(
        kinds,
        vec![
            Kind::Add,
            Kind::Delete,
            Kind::Rename,
            Kind::Modify,
            Kind::Add
        ]
    );
    assert_eq!(d.files[0].old_path, None);
    assert_eq!(d.files[0].new_path.as_deref(), Some("new.txt"));
    assert_eq!(d.files[0].new_mode, Some(0o100755));
    assert_eq!(d.files[1].new_path, None);
    assert_eq!(d.files[1].old_path.as_deref(), Some("old.txt"));
    assert_eq!(d.files[1].removed, 1);
    assert_eq!(d.files[2].paths(), vec!["from.c", "to.c"]);
    assert_eq!(
        (d.files[3].old_mode, d.files[3].new_mode),
        (Some(0o100644), Some(0o100755))
    );
    assert_eq!(d.files[4].new_mode, Some(0o120000));
    assert_eq!(d.files[4].added[0].text, "/etc/passwd");
}

#[test]
fn binary_patches_are_flagged() {
    let text = "\
diff --git a/logo.png b/logo.png
new file mode 100644
index 0000000..b1c2d3e
GIT binary patch
literal 5
McmZQzWMT#Y0001A00000

literal 0
HcmV?d00001

diff --git a/x.bin b/x.bin
index 1..2 100644
Binary files a/x.bin and b/x.bin differ
";
    let d = parse(text).unwrap();
    assert_eq!(d.files.len(), 2);
    assert!(d.files.iter().all(|f| f.binary));
    assert_eq!(d.files[0].name(), "logo.png");
    let plain = parse("Binary files a/y.bin and b/y.bin differ\n").unwrap();
    assert!(plain.files[0].binary);
    assert_eq!(plain.files[0].name(), "y.bin");
}

#[test]
fn plain_diff_u_with_timestamps() {
    let text = "\
--- orig/src/a.c\t2024-01-01 00:00:00.000000000 +0000
+++ new/src/a.c\t2024-01-02 00:00:00.000000000 +0000
@@ -1,3 +1,3 @@
 a
-b
+B
 c
";
    let d = parse(text).unwrap();
    assert_eq!(d.files[0].kind, Kind::Modify);
    assert_eq!(d.files[0].old_path.as_deref(), Some("src/a.c"));
    assert_eq!(d.files[0].new_path.as_deref(), Some("src/a.c"));
    assert_eq!(d.files[0].added[0].new_line, 2);
}

#[test]
fn absolute_names_stay_absolute() {
    let d = parse("--- /etc/x.orig\n+++ /etc/x\n@@ -1 +1 @@\n-a\n+b\n").unwrap();
    assert_eq!(d.files[0].paths(), vec!["/etc/x.orig", "/etc/x"]);
    let d = parse("diff --git a//etc/x b//etc/x\n--- a//etc/x\n+++ b//etc/x\n").unwrap();
    assert_eq!(d.files[0].name(), "/etc/x");
}

#[test]
fn a_new_file_with_an_old_name_is_malformed() {
    let text = "diff --git a/x y b/x y\nnew file mode 100644\n--- a/../../etc/passwd\n+++ b/x y\n";
    let e = parse(text).unwrap_err();
    assert!(e.message.contains("inconsistent old filename"), "{e}");
    let text = "diff --git a/x b/y z\nnew file mode 100644\n--- a/../../etc/passwd\n+++ b/y z\n";
    assert!(parse(text).is_err());
    let text = "diff --git a/x b/x\nrename from x\nrename to y\ndeleted file mode 100644\n";
    assert!(parse(text).is_err());
}

#[test]
fn names_keep_trailing_spaces_like_git() {
    let d = parse("--- a/x \n+++ b/x \n@@ -1 +1 @@\n-a\n+b\n").unwrap();
    assert_eq!(d.files[0].name(), "x ");
}

#[test]
fn differing_names_are_a_move() {
    let d = parse("diff --git a/x b/y\n--- a/x\n+++ b/y\n@@ -1 +1 @@\n-a\n+b\n").unwrap();
    assert_eq!(d.files[0].kind, Kind::Rename);
    assert_eq!(d.files[0].paths(), vec!["x", "y"]);
}

#[test]
fn quoted_names_are_unquoted() {
    let text = "\
diff --git \"a/sp ace\\tx\" \"b/sp ace\\tx\"
--- \"a/sp ace\\tx\"
+++ \"b/sp ace\\tx\"
@@ -1 +1 @@
-a
+b
diff --git \"a/\\056\\056/evil\" \"b/\\056\\056/evil\"
--- \"a/\\056\\056/evil\"
+++ \"b/\\056\\056/evil\"
@@ -1 +1 @@
-a
+b
";
    let d = parse(text).unwrap();
    assert_eq!(d.files[0].name(), "sp ace\tx");
    assert_eq!(d.files[1].name(), "../evil");
}

#[test]
fn unquoted_names_with_spaces_split_at_the_matching_half() {
    let text = "diff --git a/my file.c b/my file.c\nold mode 100644\nnew mode 100755\n";
    let d = parse(text).unwrap();
    assert_eq!(d.files[0].name(), "my file.c");
}

#[test]
fn inconsistent_names_are_refused_like_git() {
    let text = "\
diff --git a/ok.c b/ok.c
--- a/ok.c
+++ b/../../etc/passwd
@@ -1 +1 @@
-a
+b
";
    let e = parse(text).unwrap_err();
    assert_eq!(e.line, 3, "{e}");
    assert!(e.message.contains("inconsistent new filename"), "{e}");
    let rename = "\
diff --git a/a.c b/b.c
rename from a.c
rename to ../b.c
";
    assert!(parse(rename).unwrap_err().message.contains("inconsistent"));
    let spaced = "diff --git a/x y b/z w\nrename from x y\nrename to z w\n";
    assert_eq!(parse(spaced).unwrap().files[0].paths(), vec!["x y", "z w"]);
}

#[test]
fn hunk_counts_that_do_not_match_name_the_line() {
    let long = "--- a/x\n+++ b/x\n@@ -1,3 +1,3 @@\n a\n-b\n+c\n";
    let e = parse(long).unwrap_err();
    assert_eq!(e.line, 3, "{e}");
    assert!(e.message.contains("counts"), "{e}");
    let short = "--- a/x\n+++ b/x\n@@ -1,1 +1,1 @@\n-b\n+c\n+d\n";
    let e = parse(short).unwrap_err();
    assert_eq!(e.line, 6, "{e}");
    let unfit = "--- a/x\n+++ b/x\n@@ -1,1 +1,1 @@\n-b\n-c\n+d\n";
    let e = parse(unfit).unwrap_err();
    assert_eq!(e.line, 5, "{e}");
}

#[test]
fn garbage_and_orphan_hunks_are_errors() {
    let e = parse("hello\nworld\n").unwrap_err();
    assert!(e.message.contains("no diff"), "{e}");
    assert_eq!(e.line, 2);
    let e = parse("intro\n@@ -1 +1 @@\n-a\n+b\n").unwrap_err();
    assert_eq!(e.line, 2);
    assert!(e.message.contains("no file header"), "{e}");
    assert!(parse("").is_err());
    let e = parse("--- a/x\n+++ b/x\n@@ -1 +1 @\n").unwrap_err();
    assert_eq!(e.line, 3);
    assert!(e.message.contains("hunk header"), "{e}");
    let e = parse("--- x\n+++ x\n@@ -1 +1 @@\n-a\n+b\n").unwrap_err();
    assert!(e.message.contains("-p1"), "{e}");
    assert!(parse("--- /dev/null\n+++ /dev/null\n").is_err());
    assert!(parse("diff --git a/x b/x\nnew file mode 12x\n").is_err());
}

#[test]
fn mail_preamble_and_signature_are_skipped() {
    let text = "\
From 1234 Mon Sep 17 00:00:00 2001
Subject: [PATCH] fix

- a bullet in the message
---
 x | 2 +-

diff --git a/x b/x
--- a/x
+++ b/x
@@ -1 +1 @@
-a
+b
-- 
2.40.0
";
    let d = parse(text).unwrap();
    assert_eq!(d.files.len(), 1);
    assert_eq!(d.files[0].line, 8);
}

#[test]
fn crlf_and_missing_final_newline() {
    let d = parse("--- a/x\r\n+++ b/x\r\n@@ -1 +1 @@\r\n-a\r\n+b").unwrap();
    assert_eq!(d.files[0].name(), "x");
    assert_eq!(d.files[0].added[0].text, "b");
}

#[test]
fn many_spaces_in_a_header_stay_linear() {
    let line = format!("diff --git a/{} b/y\n", " ".repeat(200_000));
    let started = std::time::Instant::now();
    let _ = parse(&line);
    assert!(started.elapsed().as_secs() < 5);
}

#[test]
fn shown_escapes_control_characters() {
    assert_eq!(shown("a\u{1b}[31mb\n"), "a\\u{1b}[31mb\\n");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn arbitrary_text_never_panics(text in "\\PC{0,400}") {
        let _ = parse(&text);
    }

    #[test]
    fn diff_shaped_text_never_panics(
        lines in proptest::collection::vec(
            prop_oneof![
                Just("diff --git a/x b/x".to_string()),
                Just("--- a/x".to_string()),
                Just("+++ b/x".to_string()),
                Just("--- /dev/null".to_string()),
                Just("@@ -1,2 +1,2 @@".to_string()),
                Just("@@ -0,0 +1 @@".to_string()),
                Just("GIT binary patch".to_string()),
                Just("new file mode 120000".to_string()),
                Just("rename from \"a\\".to_string()),
                Just("\\ No newline at end of file".to_string()),
                "[-+ @\\\\\"a/]{0,12}",
            ],
            0..30,
        )
    ) {
        let _ = parse(&lines.join("\n"));
    }

    #[test]
    fn mutated_valid_diffs_never_panic(
        cut in 0usize..400,
        at in 0usize..400,
        insert in "\\PC{0,8}",
        keep in 0usize..400,
    ) {
        let mut chars: Vec<char> = MODIFY.chars().collect();
        let cut = cut.min(chars.len() - 1);
        chars.remove(cut);
        let at = at.min(chars.len());
        chars.splice(at..at, insert.chars());
        let text: String = chars.iter().collect();
        let _ = parse(&text);
        let prefix: String = chars.iter().take(keep).collect();
        let _ = parse(&prefix);
    }
}
