//! The hostile answers of `d365_hostile.rs`, from the emulator (the ground
//! truth) instead of the hand stub: a 1 GiB streamed answer and errors
//! quoting the bearer token (the emulator's `answerPaddingBytes` and
//! `echoTokenInErrors` switches).

use std::sync::Arc;
use std::time::{Duration, Instant};

use d365_emulator::{Emulator, Faults};
use sales_order_operator::d365::{D365Client, D365Error, DEFAULT_MAX_ANSWER_BYTES, NoopObserver};

use crate::common::{changes, emulator_with, key, settings};
use crate::memory::{peak_rss, ran_in_child};

const MIB: u64 = 1 << 20;

fn client(emu: &Emulator) -> D365Client {
    D365Client::new(settings(emu), Arc::new(NoopObserver)).unwrap()
}

/// A 1 GiB answer (streamed, no `Content-Length`) is cut at the 16 MiB
/// default, promptly and without the memory to hold it. Measured in a
/// child process running only this test, so the peak RSS (client and
/// emulator together) is this test's alone.
#[tokio::test]
async fn a_gibibyte_answer_from_the_emulator_is_refused_with_bounded_memory() {
    let test =
        "d365_hostile_emulator::a_gibibyte_answer_from_the_emulator_is_refused_with_bounded_memory";
    if ran_in_child(test) {
        return;
    }
    let emu = emulator_with(1, Faults::default()).await;
    let client = client(&emu);
    client
        .get_order(&key(1), &[])
        .await
        .expect("unpadded: read");
    emu.set_faults(Faults {
        answer_padding_bytes: Some(1 << 30),
        ..Faults::default()
    });
    let before = peak_rss();
    let started = Instant::now();
    let err = client.get_order(&key(1), &[]).await.unwrap_err();
    let took = started.elapsed();
    let after = peak_rss();
    println!(
        "peak RSS before {} KiB, after {} KiB; refused in {took:?}",
        before / 1024,
        after / 1024
    );
    assert!(
        matches!(err, D365Error::Unavailable { .. }) && err.is_transient(),
        "{err:?}"
    );
    let text = err.to_string();
    let limit = format!("answer too large (more than {DEFAULT_MAX_ANSWER_BYTES} bytes)");
    assert!(text.contains(&limit), "{text}");
    assert!(
        after - before < 64 * MIB,
        "grew {} MiB",
        (after - before) / MIB
    );
    assert!(took < Duration::from_secs(5), "read on for {took:?}");
}

/// Errors quoting the bearer token (a 403 on a read-only company, a 404)
/// reach the operator redacted: no token the emulator issued appears in
/// the error's text or debug form, which become status, Events and logs.
#[tokio::test]
async fn a_token_echoed_by_the_emulator_is_redacted() {
    let emu = emulator_with(
        2,
        Faults {
            read_only_companies: vec!["USMF".into()],
            echo_token_in_errors: true,
            ..Faults::default()
        },
    )
    .await;
    let client = client(&emu);
    let etag = client.get_order(&key(1), &[]).await.unwrap().etag;
    let write = changes(&[("SalesOrderStatus", "Delivered")]);
    let refused = client
        .patch_order(&key(1), &etag, &write)
        .await
        .unwrap_err();
    assert!(
        matches!(refused, D365Error::Forbidden { .. }),
        "{refused:?}"
    );
    let missing = client.get_order(&key(99), &[]).await.unwrap_err();
    assert!(matches!(missing, D365Error::NotFound { .. }), "{missing:?}");
    let tokens = emu.issued_tokens();
    assert!(!tokens.is_empty(), "a token was issued");
    for err in [refused, missing] {
        let text = format!("{err} {err:?}");
        assert!(text.contains("Authorization: Bearer [REDACTED]"), "{text}");
        for token in &tokens {
            assert!(!text.contains(token.as_str()), "token leaked: {text}");
        }
    }
}
