//! The campaign's LLM patch proposer against scripted providers on loopback (both API
//! shapes): a recorded conversation that reads an excerpt and then proposes a diff, the
//! per-round call bound, the "widen your research" instruction, and excerpts refused
//! outside the checkout.

mod common;

use common::llm_ctx::fast;
use common::llm_mock::{ScriptedLlm, Shape, reply};
use forge::agent::llm::cost::{Meter, Price};
use forge::agent::llm::http::Client;
use forge::agent::llm::providers::{ApiKey, LlmSpec};
use forge::campaign::propose::{Context, Limits, ProposeError, propose};

const KEY: &str = "sk-test-SECRET-0123456789";

const ANSWER: &str = "IDEA: remove the per-token sleep in the decode loop\nEVIDENCE: root-cause.md decode: A spends more in other +4.10 ms\nPROVENANCE: tools/server/server.cpp:update_slots\n```diff\ndiff --git a/src/a.c b/src/a.c\n--- a/src/a.c\n+++ b/src/a.c\n@@ -1,3 +1,2 @@\n int step(void) {\n-    sleep_ms(2);\n     return 0;\n```\n";

fn client(mock: &ScriptedLlm) -> Client {
    let spec = LlmSpec::parse(mock.shape.llm(), Some(&mock.base_url())).unwrap();
    Client::new(spec, ApiKey::new(KEY.into()), Price::FREE, fast()).unwrap()
}

fn checkout() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("src")).unwrap();
    std::fs::write(
        dir.path().join("src/a.c"),
        "int step(void) {\n    sleep_ms(2);\n    return 0;\n}\n",
    )
    .unwrap();
    dir
}

fn ctx<'a>(co: &'a std::path::Path, widen: bool) -> Context<'a> {
    Context {
        target: "llama.cpp",
        root_cause: "# Root cause\n\n- decode: A 12.00 ms vs B 7.90 ms\n",
        pipeline: "# Layer pipeline\n\n30 layers per pass\n",
        ideas: "# Source-idea ledger\n",
        attempts: "# Attempt ledger\n| 1 | r1-a1 | … | build_failed |\n",
        widen,
        checkout: co,
    }
}

#[tokio::test]
async fn a_recorded_conversation_reads_an_excerpt_then_proposes_a_diff() {
    for shape in [Shape::Anthropic, Shape::OpenAi] {
        let mock = ScriptedLlm::start(
            shape,
            vec![
                reply("READ src/a.c 1-3\nREAD ../../etc/passwd", 1000, 20),
                reply(ANSWER, 1500, 200),
            ],
        )
        .await;
        let co = checkout();
        let mut meter = Meter::new(10, None, 0.0);
        let p = propose(
            &client(&mock),
            &mut meter,
            &ctx(co.path(), false),
            &Limits::default(),
        )
        .await
        .unwrap();
        assert_eq!(p.calls, 2);
        assert_eq!(p.idea, "remove the per-token sleep in the decode loop");
        assert_eq!(p.provenance, ["tools/server/server.cpp:update_slots"]);
        assert!(
            p.diff.starts_with("diff --git a/src/a.c b/src/a.c\n"),
            "{}",
            p.diff
        );
        assert!(p.diff.ends_with("     return 0;\n"), "{}", p.diff);
        let bodies = mock.bodies().await;
        let second = bodies[1].to_string();
        assert!(second.contains("FILE src/a.c lines 1-3:"), "{second}");
        assert!(second.contains("sleep_ms(2);"), "{second}");
        assert!(
            second.contains("READ ../../etc/passwd: refused: outside the checkout"),
            "{second}"
        );
        let first = bodies[0].to_string();
        assert!(first.contains("decode: A 12.00 ms vs B 7.90 ms"), "{first}");
        assert!(!first.contains("widen your research"));
        for b in &bodies {
            assert!(!b.to_string().contains(KEY), "the key is never in a body");
        }
    }
}

#[tokio::test]
async fn the_round_stops_at_its_call_bound_and_widening_is_asked_for() {
    let mock = ScriptedLlm::start(
        Shape::Anthropic,
        vec![
            reply("READ src/a.c", 100, 10),
            reply("I think we should look further.", 100, 10),
            reply(ANSWER, 100, 10),
        ],
    )
    .await;
    let co = checkout();
    let mut meter = Meter::new(10, None, 0.0);
    let limits = Limits {
        calls: 2,
        ..Limits::default()
    };
    let e = propose(&client(&mock), &mut meter, &ctx(co.path(), true), &limits)
        .await
        .unwrap_err();
    assert!(matches!(e, ProposeError::NoDiff(2)), "{e}");
    assert_eq!(mock.calls(), 2);
    let bodies = mock.bodies().await;
    assert!(bodies[0].to_string().contains("widen your research"));
    assert!(
        bodies[1]
            .to_string()
            .contains("neither READ lines nor an answer")
            || bodies[1].to_string().contains("FILE src/a.c")
    );
}
