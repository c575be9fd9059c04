//! The LLM agent against scripted providers on loopback, in both API shapes: success,
//! rate limits, server errors, garbage, out-of-space values, a prompt-injection workload,
//! authentication and credit failures, the dollar cap, and the per-experiment call bound.

mod common;

use std::time::Duration;

use common::llm_ctx::{Fixture, fast, opts, settings};
use common::llm_mock::{Scripted, ScriptedLlm, Shape, reply, status};
use forge::agent::llm::cost::Price;
use forge::agent::llm::http::{Client, RetryPolicy};
use forge::agent::llm::providers::{ApiKey, LlmSpec};
use forge::agent::llm::{LlmAgent, MAX_CALLS_PER_STEP, MAX_FAILED_STEPS};
use forge::agent::select::select_with;
use forge::agent::{Agent, AgentError, AnalysisContext, Proposal};
use forge::engine::allowlist as knobs;
use forge::recipe::Layer;
use serde_json::{Value, json};

const KEY: &str = "sk-test-SECRET-0123456789";
const SHAPES: [Shape; 2] = [Shape::Anthropic, Shape::OpenAi];

fn answer(layer: &str, changes: Value) -> String {
    json!({
        "rationale": "Preemptions point at KV pressure; fewer sequences should remove them.",
        "mutation": {"layer": layer, "changes": changes},
        "expected_throughput_delta_pct": 4.5,
        "expected_accuracy_delta": 0.0
    })
    .to_string()
}

/// The agent `forge tune` would select for this mock, with the key in the environment.
fn selected(mock: &ScriptedLlm, max_dollars: Option<f64>) -> (Box<dyn Agent>, Fixture) {
    let s = settings(mock.shape.llm(), Some(&mock.base_url()), max_dollars);
    let var = mock.shape.key_env();
    let env = move |k: &str| (k == var).then(|| KEY.to_string());
    let sel = select_with(&s, &env, &opts()).unwrap();
    assert_eq!(sel.agent.name(), mock.shape.llm(), "{}", sel.banner);
    (sel.agent, Fixture::new(s))
}

/// An agent with an explicit price (for cost arithmetic).
fn priced(mock: &ScriptedLlm, price: Price, max_dollars: Option<f64>) -> (LlmAgent, Fixture) {
    let s = settings(mock.shape.llm(), Some(&mock.base_url()), max_dollars);
    let spec = LlmSpec::parse(&s.llm, s.llm_base_url.as_deref()).unwrap();
    let client = Client::new(spec, ApiKey::new(KEY.into()), price, fast()).unwrap();
    (LlmAgent::new(client, max_dollars), Fixture::new(s))
}

fn is_fallback(p: &Proposal) -> bool {
    p.rationale.starts_with("[fallback: builtin]")
}

/// Every change is allowlisted and inside the playbook's space for the layer.
fn assert_allowlisted(p: &Proposal, f: &Fixture) {
    for (k, v) in &p.changes {
        knobs::check(f.incumbent.engine, p.layer, k, v).unwrap();
        assert!(
            f.playbook.values(p.layer, k).is_some(),
            "{k} outside the space"
        );
    }
}

#[tokio::test]
async fn success_in_both_shapes_sends_the_key_only_in_its_header_and_prices_usage() {
    for shape in SHAPES {
        let mock = ScriptedLlm::start(
            shape,
            vec![reply(
                &answer("config", json!({"max_num_seqs": 256})),
                2000,
                150,
            )],
        )
        .await;
        let (mut agent, f) = selected(&mock, Some(5.0));
        let p = agent.propose(&f.ctx(Layer::Config, 0.0)).await.unwrap();
        assert!(!is_fallback(&p), "{}", p.rationale);
        assert_eq!(p.changes.get("max_num_seqs"), Some(&json!(256)));
        assert_eq!(p.expected_throughput_delta_pct, Some(4.5));
        // anthropic/claude-sonnet-4-6: $3/$15 per Mtok; openai/gpt-4o: $2.50/$10.
        let want = match shape {
            Shape::Anthropic => (2000.0 * 3.0 + 150.0 * 15.0) / 1e6,
            Shape::OpenAi => (2000.0 * 2.5 + 150.0 * 10.0) / 1e6,
        };
        assert!(
            (p.cost_usd - want).abs() < 1e-12,
            "{shape:?}: {}",
            p.cost_usd
        );
        let reqs = mock.requests().await;
        assert_eq!(reqs.len(), 1);
        let h = &reqs[0].headers;
        match shape {
            Shape::Anthropic => {
                assert_eq!(h.get("x-api-key").unwrap(), KEY);
                assert_eq!(h.get("anthropic-version").unwrap(), "2023-06-01");
            }
            Shape::OpenAi => {
                assert_eq!(h.get("authorization").unwrap(), &format!("Bearer {KEY}"));
            }
        }
        let body = String::from_utf8_lossy(&reqs[0].body).to_string();
        assert!(!body.contains("SECRET"), "the key leaked into the prompt");
        let v: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["max_tokens"], json!(1024));
        let roles: Vec<&str> = v["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["role"].as_str().unwrap())
            .collect();
        match shape {
            Shape::Anthropic => {
                assert!(
                    v["system"]
                        .as_str()
                        .unwrap()
                        .contains("tuning agent of forge")
                );
                assert_eq!(roles, ["user"]);
            }
            Shape::OpenAi => assert_eq!(roles, ["system", "user"]),
        }
        assert_eq!(v["model"], json!(shape.llm().split_once('/').unwrap().1));
    }
}

#[tokio::test]
async fn rate_limited_then_success_honours_retry_after() {
    for shape in SHAPES {
        let limited = Scripted::Status {
            status: 429,
            body: r#"{"error":{"type":"rate_limit_error","message":"slow down"}}"#.into(),
            retry_after_ms: Some(30),
        };
        let ok = reply(&answer("config", json!({"max_num_seqs": 384})), 1000, 100);
        let mock = ScriptedLlm::start(shape, vec![limited, ok]).await;
        let (mut agent, f) = selected(&mock, None);
        let t0 = std::time::Instant::now();
        let p = agent.propose(&f.ctx(Layer::Config, 0.0)).await.unwrap();
        assert!(
            t0.elapsed() >= Duration::from_millis(30),
            "Retry-After not honoured"
        );
        assert!(!is_fallback(&p), "{}", p.rationale);
        assert_eq!(p.changes.get("max_num_seqs"), Some(&json!(384)));
        assert_eq!(mock.calls(), 2);
    }
}

#[tokio::test]
async fn server_errors_until_give_up_then_builtin_and_finally_no_more_calls() {
    for shape in SHAPES {
        let mock = ScriptedLlm::start(shape, vec![]).await; // every request: HTTP 500
        let (mut agent, f) = selected(&mock, None);
        let p = agent.propose(&f.ctx(Layer::Config, 0.0)).await.unwrap();
        assert!(is_fallback(&p), "{}", p.rationale);
        assert!(
            p.rationale.contains("unavailable after 3 attempts"),
            "{}",
            p.rationale
        );
        assert!(
            !p.changes.is_empty(),
            "the built-in agent should still propose"
        );
        assert_allowlisted(&p, &f);
        assert_eq!(p.cost_usd, 0.0);
        assert_eq!(mock.calls(), 3);
        // After MAX_FAILED_STEPS failed experiments the LLM is not called again.
        for _ in 1..MAX_FAILED_STEPS + 3 {
            let p = agent.propose(&f.ctx(Layer::Config, 0.0)).await.unwrap();
            assert!(is_fallback(&p));
        }
        assert_eq!(mock.calls(), 3 * MAX_FAILED_STEPS as usize);
    }
}

#[tokio::test]
async fn garbage_is_reprompted_once_with_the_exact_error_then_builtin_takes_the_step() {
    for shape in SHAPES {
        let garbage = "Sure! I would bump the batch size a lot.";
        let mock = ScriptedLlm::start(
            shape,
            vec![reply(garbage, 3000, 20), reply("{\"rationale\": ", 3100, 5)],
        )
        .await;
        let (mut agent, f) = selected(&mock, None);
        let p = agent.propose(&f.ctx(Layer::Config, 0.0)).await.unwrap();
        assert!(is_fallback(&p), "{}", p.rationale);
        assert!(p.rationale.contains("rejected twice"), "{}", p.rationale);
        // Both refused replies travel with the proposal, to be journaled as `rej-*` rows.
        assert_eq!(p.rejected.len(), 2, "{:?}", p.rejected);
        assert!(
            p.rejected[0].why.starts_with("no JSON object found"),
            "{:?}",
            p.rejected
        );
        assert_allowlisted(&p, &f);
        assert!(p.cost_usd > 0.0, "both calls were paid for");
        let bodies = mock.bodies().await;
        assert_eq!(bodies.len(), 2);
        let second = bodies[1]["messages"].to_string();
        assert!(second.contains(garbage), "the rejected reply is echoed");
        assert!(
            second.contains("Your reply was rejected: no JSON object found in the reply"),
            "{second}"
        );
    }
}

#[tokio::test]
async fn a_fenced_or_embedded_object_is_accepted_after_a_rejection() {
    for shape in SHAPES {
        let fenced = format!(
            "Looking at the history:\n```json\n{}\n```",
            answer("config", json!({"max_num_batched_tokens": 16384}))
        );
        let mock = ScriptedLlm::start(
            shape,
            vec![reply("not json", 1000, 10), reply(&fenced, 1100, 80)],
        )
        .await;
        let (mut agent, f) = selected(&mock, None);
        let p = agent.propose(&f.ctx(Layer::Config, 0.0)).await.unwrap();
        assert!(!is_fallback(&p), "{}", p.rationale);
        assert_eq!(p.changes.get("max_num_batched_tokens"), Some(&json!(16384)));
        assert_eq!(mock.calls(), 2);
        assert_eq!(p.rejected.len(), 1);
    }
}

#[tokio::test]
async fn a_reply_cannot_buy_pairs_or_smuggle_bidi_controls() {
    // Regression: a claimed +1e308 % doubled every decision's pairs, and U+202E in a
    // rationale reached the journal.
    let text = json!({
        "rationale": "Fewer\u{202e} sequences\u{200b} help",
        "mutation": {"layer": "config", "changes": {"max_num_batched_tokens": 16384}},
        "expected_throughput_delta_pct": 1e308,
        "expected_accuracy_delta": -1e308
    })
    .to_string();
    let mock = ScriptedLlm::start(Shape::OpenAi, vec![reply(&text, 1000, 10)]).await;
    let (mut agent, f) = selected(&mock, None);
    let p = agent.propose(&f.ctx(Layer::Config, 0.0)).await.unwrap();
    assert!(!is_fallback(&p), "{}", p.rationale);
    assert_eq!(p.expected_throughput_delta_pct, Some(1000.0));
    assert_eq!(p.expected_accuracy_delta, Some(-1.0));
    assert!(
        !p.from_surrogate,
        "an LLM's claim is not the simulator's prediction"
    );
    assert_eq!(p.rationale, "Fewer sequences help");
}

#[tokio::test]
async fn out_of_space_values_never_reach_a_proposal() {
    let cases = [
        // Allowlisted, in the playbook, but the KV-capacity model says it does not fit.
        (
            json!({"max_num_batched_tokens": 32768}),
            "infeasible on this GPU and model: KV cache holds",
        ),
        // Allowlisted range but not a value of the search space.
        (
            json!({"max_num_seqs": 100}),
            "not one of the search space's values",
        ),
        // Wrong type.
        (json!({"max_num_seqs": "256"}), "expected an integer"),
        // Not a knob of this layer.
        (
            json!({"kv_cache_quant": "fp8"}),
            "not a config knob of this search space",
        ),
        // Already the current value.
        (json!({"enable_prefix_caching": true}), "already true"),
        // Too many at once.
        (
            json!({"max_num_seqs": 256, "max_num_batched_tokens": 16384,
                   "async_scheduling": false, "enable_prefix_caching": false}),
            "change one knob",
        ),
    ];
    for shape in SHAPES {
        for (changes, why) in &cases {
            let bad = reply(&answer("config", changes.clone()), 1000, 60);
            let mock = ScriptedLlm::start(shape, vec![bad.clone(), bad]).await;
            let (mut agent, f) = selected(&mock, None);
            let p = agent.propose(&f.ctx(Layer::Config, 0.0)).await.unwrap();
            assert!(is_fallback(&p), "{changes}: {}", p.rationale);
            assert_allowlisted(&p, &f);
            assert_eq!(mock.calls(), 2);
            let retry = mock.bodies().await[1]["messages"].to_string();
            assert!(retry.contains(why), "{changes}: {retry}");
        }
    }
}

#[tokio::test]
async fn wrong_layer_is_rejected() {
    let mock = ScriptedLlm::start(
        Shape::Anthropic,
        vec![
            reply(&answer("quant", json!({"kv_cache_quant": "fp8"})), 1000, 60),
            reply(&answer("config", json!({"max_num_seqs": 256})), 1000, 60),
        ],
    )
    .await;
    let (mut agent, f) = selected(&mock, None);
    let p = agent.propose(&f.ctx(Layer::Config, 0.0)).await.unwrap();
    assert!(!is_fallback(&p));
    assert_eq!(p.layer, Layer::Config);
    let retry = mock.bodies().await[1]["messages"].to_string();
    assert!(
        retry.contains("this step tunes layer `config` only"),
        "{retry}"
    );
}

#[tokio::test]
async fn a_prompt_injection_in_the_workload_changes_nothing_forge_runs() {
    for shape in SHAPES {
        // The mocked LLM "obeys" the workload's injected instructions.
        let mock = ScriptedLlm::start(
            shape,
            vec![
                reply(
                    &answer("config", json!({"trust_remote_code": true})),
                    1000,
                    40,
                ),
                reply(
                    &answer(
                        "config",
                        json!({"swap_space": 64, "scheduling_policy": "rm -rf /"}),
                    ),
                    1000,
                    40,
                ),
            ],
        )
        .await;
        let (mut agent, f) = selected(&mock, None);
        let p = agent.propose(&f.ctx(Layer::Config, 0.0)).await.unwrap();
        assert!(is_fallback(&p), "{}", p.rationale);
        assert_allowlisted(&p, &f);
        for bad in ["trust_remote_code", "swap_space", "scheduling_policy"] {
            assert!(!p.changes.contains_key(bad), "{bad} accepted: {p:?}");
        }
        // The workload's text never reached the LLM: only its statistics did.
        let first = mock.bodies().await[0].to_string().to_lowercase();
        assert!(!first.contains("ignore previous instructions"));
        assert!(!first.contains("rm -rf"));
        assert!(first.contains("requests: 5 (1 chat)"), "{first}");
        let retry = mock.bodies().await[1]["messages"].to_string();
        assert!(
            retry.contains("`trust_remote_code` is not a config knob"),
            "{retry}"
        );
    }
}

#[tokio::test]
async fn the_dollar_cap_stops_before_the_call_that_would_exceed_it() {
    for shape in SHAPES {
        // Output-only price of $1/Mtok and replies that use the whole 1024-token allowance:
        // every call costs (and is projected at) $0.001024, so $0.003072 allows exactly 3.
        let price = Price {
            input: 0.0,
            output: 1.0,
        };
        let per_call = 1024.0 / 1e6;
        let seqs = [256, 384, 192, 128];
        let replies: Vec<Scripted> = seqs
            .iter()
            .map(|s| reply(&answer("config", json!({ "max_num_seqs": s })), 5000, 1024))
            .collect();
        let mock = ScriptedLlm::start(shape, replies).await;
        let (mut agent, f) = priced(&mock, price, Some(3.0 * per_call));
        let mut spent = 0.0; // what the orchestrator sums from the rows' cost_usd
        for _ in 0..3 {
            let p = agent.propose(&f.ctx(Layer::Config, spent)).await.unwrap();
            assert!(!is_fallback(&p), "{}", p.rationale);
            assert!((p.cost_usd - per_call).abs() < 1e-12);
            spent += p.cost_usd;
        }
        let e = agent
            .propose(&f.ctx(Layer::Config, spent))
            .await
            .unwrap_err();
        assert!(
            matches!(&e, AgentError::Budget(why) if why.starts_with("LLM budget exhausted")),
            "{e}"
        );
        assert_eq!(mock.calls(), 3, "call 4 must never be made");
        // A resumed run restores the spend from the journal: still no call.
        let (mut resumed, f) = priced(&mock, price, Some(3.0 * per_call));
        assert!(resumed.propose(&f.ctx(Layer::Config, spent)).await.is_err());
        assert_eq!(mock.calls(), 3);
        assert_eq!(resumed.calls_made(), 0);
    }
}

#[tokio::test]
async fn a_failing_provider_never_exceeds_the_per_experiment_bound() {
    // Worst case: each turn gets two 503s and then garbage, so both turns use every
    // attempt. The script has more failures queued than the bound allows.
    for shape in SHAPES {
        let mut script = Vec::new();
        for _ in 0..4 {
            script.push(status(503, "overloaded"));
            script.push(status(503, "overloaded"));
            script.push(reply("garbage", 100, 5));
        }
        let mock = ScriptedLlm::start(shape, script).await;
        let (mut agent, f) = priced(&mock, Price::FREE, None);
        let p = agent.propose(&f.ctx(Layer::Config, 0.0)).await.unwrap();
        assert!(is_fallback(&p), "{}", p.rationale);
        assert_eq!(mock.calls(), MAX_CALLS_PER_STEP as usize);
        assert_eq!(agent.calls_made(), u64::from(MAX_CALLS_PER_STEP));
    }
}

#[tokio::test]
async fn bad_keys_fail_fast_once_and_never_show() {
    for shape in SHAPES {
        let body = format!(r#"{{"error":{{"message":"Incorrect API key provided: {KEY}"}}}}"#);
        let mock = ScriptedLlm::start(shape, vec![status(401, &body)]).await;
        let (mut agent, f) = selected(&mock, None);
        let p = agent.propose(&f.ctx(Layer::Config, 0.0)).await.unwrap();
        assert!(is_fallback(&p));
        assert!(
            p.rationale.contains("authentication failed (HTTP 401)"),
            "{}",
            p.rationale
        );
        assert!(p.rationale.contains(shape.key_env()), "{}", p.rationale);
        assert!(!p.rationale.contains("SECRET"));
        assert_eq!(mock.calls(), 1, "401 must not be retried");
        let p = agent.propose(&f.ctx(Layer::Config, 0.0)).await.unwrap();
        assert!(
            p.rationale.contains("LLM off for the rest of the run"),
            "{}",
            p.rationale
        );
        assert_eq!(mock.calls(), 1);
    }
}

#[tokio::test]
async fn refused_requests_echoing_the_key_are_scrubbed() {
    let body =
        format!(r#"{{"error":{{"type":"invalid_request_error","message":"bad header {KEY}"}}}}"#);
    let mock = ScriptedLlm::start(Shape::OpenAi, vec![status(400, &body)]).await;
    let (mut agent, f) = selected(&mock, None);
    let p = agent.propose(&f.ctx(Layer::Config, 0.0)).await.unwrap();
    assert!(
        p.rationale.contains("request refused (HTTP 400)"),
        "{}",
        p.rationale
    );
    assert!(p.rationale.contains("<redacted>"), "{}", p.rationale);
    assert!(!p.rationale.contains("SECRET"));
    assert_eq!(mock.calls(), 1);
}

#[tokio::test]
async fn out_of_credit_and_long_retry_after_give_up_without_retrying() {
    let quota = status(
        429,
        r#"{"error":{"type":"insufficient_quota","message":"You exceeded your current quota"}}"#,
    );
    let mock = ScriptedLlm::start(Shape::OpenAi, vec![quota]).await;
    let (mut agent, f) = selected(&mock, None);
    let p = agent.propose(&f.ctx(Layer::Config, 0.0)).await.unwrap();
    assert!(p.rationale.contains("out of credit"), "{}", p.rationale);
    assert_eq!(mock.calls(), 1);

    let wait = Scripted::Status {
        status: 429,
        body: String::new(),
        retry_after_ms: Some(3_600_000),
    };
    let mock = ScriptedLlm::start(Shape::Anthropic, vec![wait]).await;
    let (mut agent, f) = selected(&mock, None);
    let p = agent.propose(&f.ctx(Layer::Config, 0.0)).await.unwrap();
    assert!(
        p.rationale.contains("asked to wait 3600 s"),
        "{}",
        p.rationale
    );
    assert_eq!(mock.calls(), 1);
}

#[tokio::test]
async fn converged_replies_are_proposals_with_no_changes() {
    let mock = ScriptedLlm::start(
        Shape::Anthropic,
        vec![reply(&answer("config", json!({})), 1000, 30)],
    )
    .await;
    let (mut agent, f) = selected(&mock, None);
    let p = agent.propose(&f.ctx(Layer::Config, 0.0)).await.unwrap();
    assert!(p.changes.is_empty() && !is_fallback(&p), "{p:?}");
}

#[tokio::test]
async fn the_analysis_is_one_bounded_call() {
    for shape in SHAPES {
        let text =
            "Lowering max_num_seqs to 256 removed preemptions (+6.1 %).\n\u{1b}[31mNext: fp8 KV.";
        let mock = ScriptedLlm::start(shape, vec![reply(text, 4000, 120)]).await;
        let (mut agent, f) = selected(&mock, Some(1.0));
        let actx = AnalysisContext {
            settings: &f.settings,
            history: &f.history,
            workload: &f.stats,
            spent_usd: 0.0,
        };
        let a = agent.analyze(&actx).await.unwrap().unwrap();
        assert!(a.text.starts_with("Lowering max_num_seqs"), "{}", a.text);
        assert!(!a.text.contains('\u{1b}') && !a.text.contains('\n'));
        assert!(a.cost_usd > 0.0);
        assert_eq!(mock.calls(), 1);

        let failing = ScriptedLlm::start(shape, vec![]).await;
        let (mut agent, f) = selected(&failing, None);
        let actx = AnalysisContext {
            settings: &f.settings,
            history: &f.history,
            workload: &f.stats,
            spent_usd: 0.0,
        };
        assert!(agent.analyze(&actx).await.is_err());
        assert_eq!(failing.calls(), 3);
    }
}

#[tokio::test]
async fn no_key_selects_the_builtin_agent_and_calls_nothing() {
    for shape in SHAPES {
        let mock = ScriptedLlm::start(shape, vec![]).await;
        // The provider's own URL (no --llm-base-url), no key in the environment.
        let s = settings(shape.llm(), None, None);
        let sel = select_with(&s, &|_| None, &opts()).unwrap();
        assert_eq!(sel.agent.name(), "builtin");
        assert!(sel.notice.as_deref().unwrap().contains(shape.key_env()));
        let mut agent = sel.agent;
        let f = Fixture::new(s);
        let p = agent.propose(&f.ctx(Layer::Config, 0.0)).await.unwrap();
        assert!(!is_fallback(&p) && p.cost_usd == 0.0);
        assert_eq!(mock.calls(), 0);
    }
}

#[tokio::test]
async fn timed_out_calls_are_counted_as_spent() {
    // A provider that answers too late may still have generated (and billed) the reply,
    // so each timed-out attempt is charged at its projection.
    let server = wiremock::MockServer::start().await;
    wiremock::Mock::given(wiremock::matchers::method("POST"))
        .respond_with(wiremock::ResponseTemplate::new(200).set_delay(Duration::from_secs(2)))
        .mount(&server)
        .await;
    let s = settings("anthropic/claude-sonnet-4-6", Some(&server.uri()), None);
    let spec = LlmSpec::parse(&s.llm, s.llm_base_url.as_deref()).unwrap();
    let policy = RetryPolicy {
        request_timeout: Duration::from_millis(150),
        ..fast()
    };
    let price = Price {
        input: 0.0,
        output: 1.0,
    };
    let client = Client::new(spec, ApiKey::new(KEY.into()), price, policy).unwrap();
    let mut agent = LlmAgent::new(client, None);
    assert!(!format!("{agent:?}").contains("SECRET"), "{agent:?}");
    let f = Fixture::new(s);
    let p = agent.propose(&f.ctx(Layer::Config, 0.0)).await.unwrap();
    assert!(p.rationale.contains("timed out"), "{}", p.rationale);
    assert!(
        (p.cost_usd - 3.0 * 1024.0 / 1e6).abs() < 1e-12,
        "{}",
        p.cost_usd
    );
    assert_eq!(agent.calls_made(), 3);
}
