//! Boundary tests without a server: exactly-once completion, panics, cancellation,
//! bad input, and the freshness of the generated C# file.

use std::collections::HashMap;
use std::sync::mpsc;
use std::sync::Mutex;

use super::*;

/// Completions of one call: (status, message).
type Seen = Vec<(i32, String)>;

/// Every completion seen, by user_data.
static SEEN: Mutex<Option<HashMap<u64, Seen>>> = Mutex::new(None);
static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

unsafe extern "C" fn record(user_data: u64, status: i32, result: *const KahunaResult) {
    let message = result
        .as_ref()
        .and_then(|r| slice(r.message).ok().map(|m| String::from_utf8_lossy(m).into_owned()))
        .unwrap_or_default();
    let mut seen = SEEN.lock().unwrap_or_else(|p| p.into_inner());
    seen.get_or_insert_with(HashMap::new)
        .entry(user_data)
        .or_default()
        .push((status, message));
}

fn id() -> u64 {
    NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

/// Waits until `user_data` completed, then checks nothing else arrives for it.
fn completions(user_data: u64) -> Seen {
    for _ in 0..500 {
        let done = SEEN
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .and_then(|m| m.get(&user_data).cloned());
        if let Some(v) = done {
            std::thread::sleep(Duration::from_millis(50));
            return SEEN
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .as_ref()
                .and_then(|m| m.get(&user_data).cloned())
                .unwrap_or(v);
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    Vec::new()
}

fn endpoint(s: &str) -> KahunaBytes {
    bytes(s.as_bytes())
}

fn options() -> KahunaClientOptions {
    KahunaClientOptions {
        timeout_ms: 3000,
        attempt_timeout_ms: 200,
        connect_timeout_ms: 100,
        client_id: NO_BYTES,
        ca_pem: NO_BYTES,
        client_cert_pem: NO_BYTES,
        client_key_pem: NO_BYTES,
        pins: ptr::null(),
        pins_len: 0,
        insecure_skip_verify: 0,
        token: NO_BYTES,
    }
}

/// `kahuna_client_new`: the client, or the status and message it failed with.
fn try_new_client(addr: &str, options: &KahunaClientOptions) -> Result<*mut KahunaClient, (i32, String)> {
    let eps = [endpoint(addr)];
    let mut out: *mut KahunaClient = ptr::null_mut();
    let mut err = NO_BYTES;
    let status = unsafe { kahuna_client_new(eps.as_ptr(), eps.len(), options, &mut out, &mut err) };
    if status == KAHUNA_STATUS_OK {
        assert!(!out.is_null());
        return Ok(out);
    }
    let message = unsafe { String::from_utf8_lossy(std::slice::from_raw_parts(err.ptr, err.len)).into_owned() };
    unsafe { kahuna_bytes_free(err) };
    Err((status, message))
}

fn new_client(addr: &str) -> *mut KahunaClient {
    try_new_client(addr, &options()).expect("client")
}

/// Completes `call` and returns its one completion.
fn once(call: impl FnOnce(u64)) -> (i32, String) {
    let ud = id();
    call(ud);
    let seen = completions(ud);
    assert_eq!(seen.len(), 1, "{seen:?}");
    seen[0].clone()
}

/// Starts `call` (given its user_data) on client `c`, frees `c` while the call is in
/// flight, and checks the call completes once, with `KAHUNA_STATUS_CLOSED`.
fn closed_when_freed(c: *mut KahunaClient, call: impl FnOnce(u64)) {
    let ud = id();
    call(ud);
    std::thread::sleep(Duration::from_millis(50));
    unsafe { kahuna_client_free(c) };
    let seen = completions(ud);
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(seen[0].0, KAHUNA_STATUS_CLOSED, "{seen:?}");
}

#[test]
fn unusable_tls_options_are_config_errors() {
    let pin = bytes(b"00000000000000000000000000000000000000000000000000000000000000000");
    let ca = bytes(b"not a certificate");
    let cases: Vec<(&str, KahunaClientOptions)> = vec![
        (
            "a CA that is not PEM",
            KahunaClientOptions {
                ca_pem: ca,
                ..options()
            },
        ),
        (
            "a pin of 65 digits",
            KahunaClientOptions {
                pins: &pin,
                pins_len: 1,
                ..options()
            },
        ),
        (
            "insecure and a pin together",
            KahunaClientOptions {
                pins: &pin,
                pins_len: 1,
                insecure_skip_verify: 1,
                ..options()
            },
        ),
        (
            "a client certificate without its key",
            KahunaClientOptions {
                client_cert_pem: ca,
                ..options()
            },
        ),
        (
            "pins_len without pins",
            KahunaClientOptions {
                pins_len: 2,
                ..options()
            },
        ),
    ];
    for (what, o) in cases {
        match try_new_client("127.0.0.1:1", &o) {
            Ok(c) => {
                unsafe { kahuna_client_free(c) };
                panic!("{what}: accepted");
            }
            Err((status, message)) => {
                assert!(
                    status == KAHUNA_STATUS_CONFIG || status == KAHUNA_STATUS_INVALID_ARGUMENT,
                    "{what}: status {status} ({message})"
                );
                assert!(!message.is_empty(), "{what}: no message");
            }
        }
    }
    // Insecure alone is usable (TLS without verification, for development).
    let insecure = KahunaClientOptions {
        insecure_skip_verify: 1,
        token: bytes(b"a-token"),
        ..options()
    };
    let c = try_new_client("127.0.0.1:1", &insecure).expect("insecure TLS with a token");
    unsafe { kahuna_client_free(c) };
}

#[test]
fn a_panic_in_the_operation_completes_the_call_once() {
    let ud = id();
    start(Some(record), ud, ptr::null(), || {
        op(&CancellationToken::new(), async {
            panic!("boom");
        })
    });
    let seen = completions(ud);
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(seen[0].0, KAHUNA_STATUS_PANIC);
    assert!(seen[0].1.contains("boom"), "{seen:?}");
}

#[test]
fn a_panic_while_preparing_completes_the_call_once() {
    let ud = id();
    start(
        Some(record),
        ud,
        ptr::null(),
        || -> Result<(CancellationToken, BoxedOp), FfiError> {
            panic!("bad request");
        },
    );
    let seen = completions(ud);
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(seen[0].0, KAHUNA_STATUS_PANIC);
}

#[test]
fn an_abandoned_operation_still_completes() {
    let ud = id();
    let completion = Completion::new(Some(record), ud);
    drop(completion);
    let seen = completions(ud);
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].0, KAHUNA_STATUS_PANIC);
}

#[test]
fn cancel_completes_an_operation_in_flight() {
    let cancel = kahuna_cancel_new();
    let ud = id();
    let (tx, rx) = mpsc::channel::<()>();
    start(Some(record), ud, cancel, move || {
        op(&CancellationToken::new(), async move {
            tokio::time::sleep(Duration::from_secs(60)).await;
            drop(tx);
            Ok(Answer::default())
        })
    });
    unsafe { kahuna_cancel_cancel(cancel) };
    let seen = completions(ud);
    assert_eq!(
        seen,
        vec![(KAHUNA_STATUS_CANCELLED, "the operation was cancelled".to_owned())]
    );
    unsafe { kahuna_cancel_free(cancel) };
    // The operation's future was dropped with the task.
    assert!(rx.recv_timeout(Duration::from_secs(5)).is_err());
}

#[test]
fn freeing_the_client_completes_calls_in_flight() {
    // Nothing listens on port 1: the get keeps retrying until its 3 s deadline.
    let c = new_client("127.0.0.1:1");
    let key = b"k";
    let req = KahunaGetRequest {
        key: bytes(key),
        revision: 0,
        durability: 0,
        consistency: 0,
    };
    closed_when_freed(c, |ud| unsafe { kahuna_kv_get(c, &req, ptr::null(), ud, Some(record)) });
}

#[test]
fn bad_input_is_a_status_not_a_crash() {
    let c = new_client("127.0.0.1:1");
    assert_eq!(
        once(|ud| unsafe { kahuna_kv_get(c, ptr::null(), ptr::null(), ud, Some(record)) }).0,
        KAHUNA_STATUS_INVALID_ARGUMENT
    );

    let ud = id();
    let bad = [0xffu8, 0xfe];
    let req = KahunaGetRequest {
        key: bytes(&bad),
        revision: 0,
        durability: 0,
        consistency: 0,
    };
    unsafe { kahuna_kv_get(c, &req, ptr::null(), ud, Some(record)) };
    let seen = completions(ud);
    assert_eq!(seen[0].0, KAHUNA_STATUS_INVALID_ARGUMENT);
    assert!(seen[0].1.contains("UTF-8"), "{seen:?}");

    let ud = id();
    let req = KahunaGetRequest {
        key: KahunaBytes {
            ptr: ptr::null(),
            len: 3,
        },
        revision: 0,
        durability: 7,
        consistency: 0,
    };
    unsafe { kahuna_kv_get(ptr::null(), &req, ptr::null(), ud, Some(record)) };
    assert_eq!(completions(ud)[0].0, KAHUNA_STATUS_INVALID_ARGUMENT);
    unsafe { kahuna_client_free(c) };

    // No endpoints: a config error with a message to free.
    let mut out: *mut KahunaClient = ptr::null_mut();
    let mut err = NO_BYTES;
    let status = unsafe { kahuna_client_new(ptr::null(), 0, ptr::null(), &mut out, &mut err) };
    assert_eq!(status, KAHUNA_STATUS_CONFIG);
    assert!(out.is_null());
    let text = unsafe { String::from_utf8_lossy(slice(err).unwrap_or_default()).into_owned() };
    assert!(text.contains("no endpoints"), "{text}");
    unsafe { kahuna_bytes_free(err) };
}

/// The set condition crosses the boundary as an `i32`: a number that is no
/// `KahunaSetCondition`, and a condition a delete does not take, are `INVALID_ARGUMENT`
/// naming the number, before any I/O; every variant converts back to itself.
#[test]
fn unknown_set_conditions_are_invalid_arguments() {
    let c = new_client("127.0.0.1:1");
    let no_fence = KahunaFence {
        present: 0,
        resource: NO_BYTES,
        token: 0,
        durability: 0,
    };
    for condition in [5, -1, i32::MAX] {
        let req = KahunaSetRequest {
            key: bytes(b"k"),
            value: bytes(b"v"),
            ttl_ms: 0,
            condition,
            compare_value: NO_BYTES,
            compare_revision: 0,
            durability: 0,
            fence: no_fence,
        };
        let (status, message) = once(|ud| unsafe { kahuna_kv_set(c, &req, ptr::null(), ud, Some(record)) });
        assert_eq!(
            status, KAHUNA_STATUS_INVALID_ARGUMENT,
            "set condition {condition}: {message}"
        );
        assert!(
            message.contains(&format!("unknown set condition {condition}")),
            "{message}"
        );
    }
    let delete = |condition: KahunaSetCondition| KahunaDeleteRequest {
        key: bytes(b"k"),
        condition: condition as i32,
        compare_value: NO_BYTES,
        compare_revision: 0,
        durability: 0,
        fence: no_fence,
    };
    for condition in [KahunaSetCondition::IfNotExists, KahunaSetCondition::IfExists] {
        let req = delete(condition);
        let (status, message) = once(|ud| unsafe { kahuna_kv_delete(c, &req, ptr::null(), ud, Some(record)) });
        assert_eq!(status, KAHUNA_STATUS_INVALID_ARGUMENT, "{condition:?}: {message}");
        assert!(message.contains("delete's condition"), "{condition:?}: {message}");
        assert!(
            message.contains(&format!("not {}", condition as i32)),
            "{condition:?}: {message}"
        );
    }
    // Always is taken: the delete goes on to the (unreachable) cluster.
    let req = delete(KahunaSetCondition::Always);
    let (status, message) = once(|ud| unsafe { kahuna_kv_delete(c, &req, ptr::null(), ud, Some(record)) });
    assert!(
        status != KAHUNA_STATUS_INVALID_ARGUMENT && status != KAHUNA_STATUS_OK && status != KAHUNA_STATUS_PANIC,
        "{status}: {message}"
    );
    for condition in KahunaSetCondition::ALL {
        assert_eq!(KahunaSetCondition::try_from(condition as i32), Ok(condition));
    }
    unsafe { kahuna_client_free(c) };
}

/// The calls added for Kahuna 1.x parity (unlock and extend by owner, history, cluster
/// status and leader transfer, sequence peek) complete exactly once on bad input and on an unreachable
/// cluster, like every other call.
#[test]
fn parity_calls_complete_once() {
    let c = new_client("127.0.0.1:1");
    let resource = b"r";
    let owner = b"worker-1";
    let unlock = KahunaUnlockRequest {
        resource: bytes(resource),
        owner: NO_BYTES,
        durability: KAHUNA_DURABILITY_PERSISTENT,
    };
    let ud = id();
    unsafe { kahuna_lock_unlock(c, &unlock, ptr::null(), ud, Some(record)) };
    let seen = completions(ud);
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(seen[0].0, KAHUNA_STATUS_INVALID_ARGUMENT, "an empty owner is refused");

    let bad_tier = KahunaUnlockRequest {
        owner: bytes(owner),
        durability: 9,
        ..unlock
    };
    assert_eq!(
        once(|ud| unsafe { kahuna_lock_unlock(c, &bad_tier, ptr::null(), ud, Some(record)) }).0,
        KAHUNA_STATUS_INVALID_ARGUMENT
    );

    let extend = KahunaLockExtendByOwnerRequest {
        resource: bytes(resource),
        owner: bytes(owner),
        ttl_ms: 0,
        durability: KAHUNA_DURABILITY_EPHEMERAL,
    };
    let ud = id();
    unsafe { kahuna_lock_extend_by_owner(c, &extend, ptr::null(), ud, Some(record)) };
    let seen = completions(ud);
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(
        seen[0].0, KAHUNA_STATUS_INVALID_ARGUMENT,
        "a zero ttl is refused: {seen:?}"
    );

    assert_eq!(
        once(|ud| unsafe { kahuna_lock_extend_by_owner(ptr::null(), &extend, ptr::null(), ud, Some(record)) }).0,
        KAHUNA_STATUS_INVALID_ARGUMENT
    );

    assert_eq!(
        once(|ud| unsafe { kahuna_kv_history(c, ptr::null(), ptr::null(), ud, Some(record)) }).0,
        KAHUNA_STATUS_INVALID_ARGUMENT
    );

    assert_eq!(
        once(|ud| unsafe { kahuna_sequence_peek(c, ptr::null(), ptr::null(), ud, Some(record)) }).0,
        KAHUNA_STATUS_INVALID_ARGUMENT
    );

    assert_eq!(
        once(|ud| unsafe { kahuna_cluster_status(ptr::null(), ptr::null(), ud, Some(record)) }).0,
        KAHUNA_STATUS_INVALID_ARGUMENT
    );

    let transfer = KahunaTransferLeaderRequest { node_id: 2 };
    assert_eq!(
        once(|ud| unsafe { kahuna_cluster_transfer_leader(ptr::null(), &transfer, ptr::null(), ud, Some(record)) }).0,
        KAHUNA_STATUS_INVALID_ARGUMENT
    );
    let ud = id();
    unsafe { kahuna_cluster_transfer_leader(c, ptr::null(), ptr::null(), ud, Some(record)) };
    let seen = completions(ud);
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(
        seen[0].0, KAHUNA_STATUS_INVALID_ARGUMENT,
        "a null request is refused: {seen:?}"
    );

    // Nobody listens at 127.0.0.1:1: each call fails once with a retryable status.
    let history = KahunaHistoryRequest {
        key: bytes(b"k"),
        limit: 0,
    };
    let peek = KahunaSequencePeekRequest { name: bytes(b"s") };
    let uds = [id(), id(), id(), id(), id()];
    let unlock = KahunaUnlockRequest {
        owner: bytes(owner),
        ..unlock
    };
    unsafe {
        kahuna_lock_unlock(c, &unlock, ptr::null(), uds[0], Some(record));
        kahuna_kv_history(c, &history, ptr::null(), uds[1], Some(record));
        kahuna_sequence_peek(c, &peek, ptr::null(), uds[2], Some(record));
        kahuna_cluster_status(c, ptr::null(), uds[3], Some(record));
        kahuna_cluster_transfer_leader(c, &transfer, ptr::null(), uds[4], Some(record));
    }
    for ud in uds {
        let seen = completions(ud);
        assert_eq!(seen.len(), 1, "{seen:?}");
        assert_ne!(seen[0].0, KAHUNA_STATUS_OK, "{seen:?}");
        assert_ne!(seen[0].0, KAHUNA_STATUS_PANIC, "{seen:?}");
    }
    unsafe { kahuna_client_free(c) };
}

fn watch_request(key: &[u8], progress_interval_ms: u64) -> KahunaWatchRequest {
    KahunaWatchRequest {
        key: bytes(key),
        prefix: 1,
        start_revision: 0,
        progress_interval_ms,
    }
}

/// Watch calls complete exactly once on bad input, on a refused progress interval
/// (before any I/O), on an unreachable cluster and when the client is freed meanwhile;
/// the watch functions ignore null handles.
#[test]
fn watch_calls_complete_once() {
    let c = new_client("127.0.0.1:1");
    let too_often = watch_request(b"w/", 10);
    let too_rare = watch_request(b"w/", 660_000);
    let refused: [(&str, *const KahunaWatchRequest); 3] = [
        ("a null request", ptr::null()),
        ("an interval of 10 ms", &too_often),
        ("an interval of 11 minutes", &too_rare),
    ];
    for (what, req) in refused {
        let (status, message) = once(|ud| unsafe { kahuna_watch_open(c, req, ptr::null(), ud, Some(record)) });
        assert_eq!(status, KAHUNA_STATUS_INVALID_ARGUMENT, "{what}: {message}");
    }
    let bad = [0xffu8];
    let ud = id();
    unsafe { kahuna_watch_open(c, &watch_request(&bad, 0), ptr::null(), ud, Some(record)) };
    let seen = completions(ud);
    assert_eq!(seen[0].0, KAHUNA_STATUS_INVALID_ARGUMENT);
    assert!(seen[0].1.contains("UTF-8"), "{seen:?}");

    assert_eq!(
        once(|ud| unsafe { kahuna_watch_open(ptr::null(), &watch_request(b"w/", 0), ptr::null(), ud, Some(record)) }).0,
        KAHUNA_STATUS_INVALID_ARGUMENT
    );
    assert_eq!(
        once(|ud| unsafe { kahuna_watch_next(ptr::null(), ptr::null(), ud, Some(record)) }).0,
        KAHUNA_STATUS_INVALID_ARGUMENT
    );
    assert_eq!(unsafe { kahuna_watch_revision(ptr::null()) }, 0);
    unsafe { kahuna_watch_free(ptr::null_mut()) };

    // Nobody listens at 127.0.0.1:1: the open fails once, with neither a handle nor a panic.
    let ud = id();
    unsafe { kahuna_watch_open(c, &watch_request(b"w/", 0), ptr::null(), ud, Some(record)) };
    let seen = completions(ud);
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_ne!(seen[0].0, KAHUNA_STATUS_OK, "{seen:?}");
    assert_ne!(seen[0].0, KAHUNA_STATUS_PANIC, "{seen:?}");

    // An open still trying when the client is freed completes with CLOSED.
    closed_when_freed(c, |ud| unsafe {
        kahuna_watch_open(c, &watch_request(b"w/", 0), ptr::null(), ud, Some(record))
    });
}

/// Election calls complete exactly once on bad input (before any I/O), on an
/// unreachable cluster and when the client is freed meanwhile; the observer and
/// proclaim functions refuse null handles.
#[test]
fn election_calls_complete_once() {
    let c = new_client("127.0.0.1:1");
    let bad = [0xffu8];
    let campaign = |name: &[u8], ttl_ms: u64| KahunaCampaignRequest {
        name: bytes(name),
        value: bytes(b"v"),
        ttl_ms,
        wait: 1,
        wait_ms: 100,
    };
    let no_ttl = campaign(b"e", 0);
    let bad_name = campaign(&bad, 1000);
    let refused: [(&str, *const KahunaCampaignRequest); 3] = [
        ("a null request", ptr::null()),
        ("a zero ttl", &no_ttl),
        ("a name that is not UTF-8", &bad_name),
    ];
    for (what, req) in refused {
        let (status, message) = once(|ud| unsafe { kahuna_election_campaign(c, req, ptr::null(), ud, Some(record)) });
        assert_eq!(status, KAHUNA_STATUS_INVALID_ARGUMENT, "{what}: {message}");
    }
    let bad_election = KahunaElectionRequest { name: bytes(&bad) };
    for observe in [false, true] {
        let ud = id();
        if observe {
            unsafe { kahuna_election_observe(c, &bad_election, ptr::null(), ud, Some(record)) };
        } else {
            unsafe { kahuna_election_leader(c, &bad_election, ptr::null(), ud, Some(record)) };
        }
        let seen = completions(ud);
        assert_eq!(seen.len(), 1, "{seen:?}");
        assert_eq!(seen[0].0, KAHUNA_STATUS_INVALID_ARGUMENT, "{seen:?}");
    }
    assert_eq!(
        once(|ud| unsafe { kahuna_observer_next(ptr::null(), ptr::null(), ud, Some(record)) }).0,
        KAHUNA_STATUS_INVALID_ARGUMENT
    );
    let ud = id();
    let proclaim = KahunaProclaimRequest { value: bytes(b"x") };
    unsafe { kahuna_election_proclaim(ptr::null(), &proclaim, ptr::null(), ud, Some(record)) };
    assert_eq!(completions(ud)[0].0, KAHUNA_STATUS_INVALID_ARGUMENT);
    unsafe { kahuna_observer_free(ptr::null_mut()) };

    // Nobody listens at 127.0.0.1:1: the reads fail once, with neither a handle nor a
    // panic; a campaign's 100 ms wait passes first, so it is not elected (status 0).
    let election = KahunaElectionRequest { name: bytes(b"e") };
    let req = campaign(b"e", 1000);
    for which in 0..3 {
        let ud = id();
        match which {
            0 => unsafe { kahuna_election_campaign(c, &req, ptr::null(), ud, Some(record)) },
            1 => unsafe { kahuna_election_leader(c, &election, ptr::null(), ud, Some(record)) },
            _ => unsafe { kahuna_election_observe(c, &election, ptr::null(), ud, Some(record)) },
        }
        let seen = completions(ud);
        assert_eq!(seen.len(), 1, "call {which}: {seen:?}");
        assert_ne!(seen[0].0, KAHUNA_STATUS_PANIC, "call {which}: {seen:?}");
        if which > 0 {
            assert_ne!(seen[0].0, KAHUNA_STATUS_OK, "call {which}: {seen:?}");
        }
    }

    // A campaign still trying when the client is freed completes with CLOSED.
    let forever = KahunaCampaignRequest { wait: 0, ..req };
    closed_when_freed(c, |ud| unsafe {
        kahuna_election_campaign(c, &forever, ptr::null(), ud, Some(record))
    });
}

fn permit_request(name: &[u8], permits: u32, wait_ms: u64) -> KahunaPermitRequest {
    KahunaPermitRequest {
        name: bytes(name),
        permits,
        ttl_ms: 1000,
        wait_ms,
        retry_ms: 0,
        owner: NO_BYTES,
    }
}

/// `kahuna_lock_acquire_permit` completes exactly once: bad input (null request or
/// handle, a name or owner that is not UTF-8, 0 permits) is `INVALID_ARGUMENT` before
/// any I/O; an unreachable cluster is an error with no handle, never a panic; a call
/// still waiting when the client is freed completes with `CLOSED`.
#[test]
fn permit_calls_complete_once() {
    let c = new_client("127.0.0.1:1");
    let bad = [0xffu8];
    let bad_owner = KahunaPermitRequest {
        owner: bytes(&bad),
        ..permit_request(b"pool", 3, 0)
    };
    let refused = [
        ("a name that is not UTF-8", permit_request(&bad, 3, 0)),
        ("an owner that is not UTF-8", bad_owner),
        ("no permits", permit_request(b"pool", 0, 0)),
    ];
    for (what, req) in refused {
        let (status, message) =
            once(|ud| unsafe { kahuna_lock_acquire_permit(c, &req, ptr::null(), ud, Some(record)) });
        assert_eq!(status, KAHUNA_STATUS_INVALID_ARGUMENT, "{what}: {message}");
    }
    let (status, _) = once(|ud| unsafe { kahuna_lock_acquire_permit(c, ptr::null(), ptr::null(), ud, Some(record)) });
    assert_eq!(status, KAHUNA_STATUS_INVALID_ARGUMENT);
    let req = permit_request(b"pool", 3, 0);
    let (status, message) =
        once(|ud| unsafe { kahuna_lock_acquire_permit(ptr::null(), &req, ptr::null(), ud, Some(record)) });
    assert_eq!(status, KAHUNA_STATUS_INVALID_ARGUMENT, "{message}");
    assert!(message.contains("client"), "{message}");

    // Nobody listens at 127.0.0.1:1: one error, neither a handle nor a panic.
    let (status, message) = once(|ud| unsafe { kahuna_lock_acquire_permit(c, &req, ptr::null(), ud, Some(record)) });
    assert_ne!(status, KAHUNA_STATUS_OK, "{message}");
    assert_ne!(status, KAHUNA_STATUS_PANIC, "{message}");

    // A permit still waiting when the client is freed completes with CLOSED.
    let forever = permit_request(b"pool", 3, 60_000);
    closed_when_freed(c, |ud| unsafe {
        kahuna_lock_acquire_permit(c, &forever, ptr::null(), ud, Some(record))
    });
}

/// Every error of the core client comes out as the status numbered like its kind in
/// the catalogue, and every kind has a status of that number.
#[test]
fn core_errors_map_to_their_status() {
    let errors = [
        Error::InvalidArgument("x".into()),
        Error::Fenced("x".into()),
        Error::Compacted("x".into()),
        Error::FutureRevision("x".into()),
        Error::Membership("x".into()),
        Error::SequenceExhausted("x".into()),
        Error::ResourceExhausted("x".into()),
        Error::Unauthenticated("x".into()),
        Error::PermissionDenied("x".into()),
        Error::AlreadyApplied("x".into()),
        Error::Unavailable("x".into()),
        Error::Timeout {
            elapsed: Duration::from_secs(1),
            last: "x".into(),
        },
        Error::LockNotHeld("x".into()),
        Error::Config("x".into()),
        Error::Unimplemented("x".into()),
        Error::Internal("x".into()),
        Error::Other {
            code: "NEW".into(),
            message: "x".into(),
        },
    ];
    for e in errors {
        let kind = e.kind();
        assert_eq!(FfiError::from(e).status, kind as i32, "{kind:?}");
    }
    let statuses = [
        (ErrorKind::Ok, KAHUNA_STATUS_OK),
        (ErrorKind::InvalidArgument, KAHUNA_STATUS_INVALID_ARGUMENT),
        (ErrorKind::Fenced, KAHUNA_STATUS_FENCED),
        (ErrorKind::Compacted, KAHUNA_STATUS_COMPACTED),
        (ErrorKind::FutureRevision, KAHUNA_STATUS_FUTURE_REVISION),
        (ErrorKind::Membership, KAHUNA_STATUS_MEMBERSHIP),
        (ErrorKind::Unavailable, KAHUNA_STATUS_UNAVAILABLE),
        (ErrorKind::Timeout, KAHUNA_STATUS_TIMEOUT),
        (ErrorKind::LockNotHeld, KAHUNA_STATUS_LOCK_NOT_HELD),
        (ErrorKind::Config, KAHUNA_STATUS_CONFIG),
        (ErrorKind::Unimplemented, KAHUNA_STATUS_UNIMPLEMENTED),
        (ErrorKind::Internal, KAHUNA_STATUS_INTERNAL),
        (ErrorKind::Other, KAHUNA_STATUS_OTHER),
        (ErrorKind::Cancelled, KAHUNA_STATUS_CANCELLED),
        (ErrorKind::Closed, KAHUNA_STATUS_CLOSED),
        (ErrorKind::Panic, KAHUNA_STATUS_PANIC),
        (ErrorKind::NotLeader, KAHUNA_STATUS_NOT_LEADER),
        (ErrorKind::NoLeader, KAHUNA_STATUS_NO_LEADER),
        (ErrorKind::SequenceExhausted, KAHUNA_STATUS_SEQUENCE_EXHAUSTED),
        (ErrorKind::ResourceExhausted, KAHUNA_STATUS_RESOURCE_EXHAUSTED),
        (ErrorKind::Unauthenticated, KAHUNA_STATUS_UNAUTHENTICATED),
        (ErrorKind::PermissionDenied, KAHUNA_STATUS_PERMISSION_DENIED),
        (ErrorKind::AlreadyApplied, KAHUNA_STATUS_ALREADY_APPLIED),
    ];
    assert_eq!(statuses.len(), ErrorKind::ALL.len());
    for (kind, status) in statuses {
        assert_eq!(kind as i32, status, "{kind:?}");
        assert_eq!(kahuna_status_retryable(status), kind.retryable(), "{kind:?}");
    }
}

/// One call to make, given its user_data.
type Call<'a> = Box<dyn Fn(u64) + 'a>;

fn rate_request(name: &[u8], policy: i32, window_ms: u64, durability: i32) -> KahunaRateCheckRequest {
    KahunaRateCheckRequest {
        name: bytes(name),
        policy,
        limit: 10,
        window_ms,
        refill_per_second: 5,
        cost: 1,
        durability,
    }
}

/// Rate checks complete exactly once: bad input (null request or handle, bad UTF-8,
/// an unknown policy or tier, a zero window) is `INVALID_ARGUMENT` before any I/O;
/// an unreachable cluster is an error, never a panic; a free meanwhile is `CLOSED`.
#[test]
fn rate_check_completes_once() {
    let c = new_client("127.0.0.1:1");
    let bad = [0xffu8];
    let refused = [
        ("bad UTF-8", rate_request(&bad, KAHUNA_RATE_FIXED_WINDOW, 1000, 0)),
        ("an unknown policy", rate_request(b"api", 9, 1000, 0)),
        (
            "an unknown tier",
            rate_request(b"api", KAHUNA_RATE_SLIDING_WINDOW, 1000, 5),
        ),
        ("a zero window", rate_request(b"api", KAHUNA_RATE_FIXED_WINDOW, 0, 0)),
        (
            "a zero sliding window",
            rate_request(b"api", KAHUNA_RATE_SLIDING_WINDOW, 0, 1),
        ),
    ];
    for (what, req) in refused {
        let (status, message) = once(|ud| unsafe { kahuna_rate_check(c, &req, ptr::null(), ud, Some(record)) });
        assert_eq!(status, KAHUNA_STATUS_INVALID_ARGUMENT, "{what}: {message}");
    }
    let (status, _) = once(|ud| unsafe { kahuna_rate_check(c, ptr::null(), ptr::null(), ud, Some(record)) });
    assert_eq!(status, KAHUNA_STATUS_INVALID_ARGUMENT);
    let req = rate_request(b"api", KAHUNA_RATE_TOKEN_BUCKET, 0, 0);
    let (status, _) = once(|ud| unsafe { kahuna_rate_check(ptr::null(), &req, ptr::null(), ud, Some(record)) });
    assert_eq!(status, KAHUNA_STATUS_INVALID_ARGUMENT);

    for tier in [KAHUNA_DURABILITY_PERSISTENT, KAHUNA_DURABILITY_EPHEMERAL] {
        let req = rate_request(b"api", KAHUNA_RATE_TOKEN_BUCKET, 0, tier);
        let (status, message) = once(|ud| unsafe { kahuna_rate_check(c, &req, ptr::null(), ud, Some(record)) });
        assert_ne!(status, KAHUNA_STATUS_OK, "{message}");
        assert_ne!(status, KAHUNA_STATUS_PANIC, "{message}");
    }

    let req = rate_request(b"api", KAHUNA_RATE_FIXED_WINDOW, 1000, 0);
    closed_when_freed(c, |ud| unsafe {
        kahuna_rate_check(c, &req, ptr::null(), ud, Some(record))
    });
}

/// Batch and range calls complete exactly once: bad input is `INVALID_ARGUMENT`
/// before any I/O, an unreachable cluster an error (never a panic).
#[test]
fn batch_calls_complete_once() {
    let c = new_client("127.0.0.1:1");
    let bad = [0xffu8];
    let good_keys = [bytes(b"a"), bytes(b"b")];
    let bad_keys = [bytes(b"a"), bytes(&bad)];
    let get = |keys: &[KahunaBytes], len: usize, durability: i32| KahunaGetManyRequest {
        keys: if keys.is_empty() { ptr::null() } else { keys.as_ptr() },
        keys_len: len,
        durability,
        consistency: 0,
    };
    let refused = [
        ("a bad key", get(&bad_keys, 2, 0)),
        ("null keys with a length", get(&[], 3, 0)),
        ("an unknown tier", get(&good_keys, 2, 4)),
    ];
    for (what, req) in refused {
        let (status, message) = once(|ud| unsafe { kahuna_kv_get_many(c, &req, ptr::null(), ud, Some(record)) });
        assert_eq!(status, KAHUNA_STATUS_INVALID_ARGUMENT, "{what}: {message}");
    }
    let (status, _) = once(|ud| unsafe { kahuna_kv_get_many(c, ptr::null(), ptr::null(), ud, Some(record)) });
    assert_eq!(status, KAHUNA_STATUS_INVALID_ARGUMENT);

    let pairs = [KahunaKeyValuePair {
        key: bytes(&bad),
        value: bytes(b"v"),
    }];
    let set = KahunaSetManyRequest {
        items: pairs.as_ptr(),
        items_len: 1,
    };
    let (status, _) = once(|ud| unsafe { kahuna_kv_set_many(c, &set, ptr::null(), ud, Some(record)) });
    assert_eq!(status, KAHUNA_STATUS_INVALID_ARGUMENT);
    let del = KahunaDeleteManyRequest {
        keys: ptr::null(),
        keys_len: 1,
    };
    let (status, _) = once(|ud| unsafe { kahuna_kv_delete_many(c, &del, ptr::null(), ud, Some(record)) });
    assert_eq!(status, KAHUNA_STATUS_INVALID_ARGUMENT);
    let range = |start: &'static [u8], durability: i32| KahunaScanRangeRequest {
        start: bytes(start),
        end: bytes(b"z"),
        page: KahunaScanPageOptions {
            limit: 0,
            page_token: NO_BYTES,
            keys_only: 0,
            durability,
            consistency: 0,
        },
    };
    let (status, _) = once(|ud| unsafe { kahuna_kv_scan_range(c, &range(&[0xff], 0), ptr::null(), ud, Some(record)) });
    assert_eq!(status, KAHUNA_STATUS_INVALID_ARGUMENT);
    let (status, _) = once(|ud| unsafe { kahuna_kv_scan_range(c, &range(b"a", 3), ptr::null(), ud, Some(record)) });
    assert_eq!(status, KAHUNA_STATUS_INVALID_ARGUMENT);
    let (status, _) =
        once(|ud| unsafe { kahuna_kv_scan_range(ptr::null(), &range(b"a", 0), ptr::null(), ud, Some(record)) });
    assert_eq!(status, KAHUNA_STATUS_INVALID_ARGUMENT);

    // Nobody listens at 127.0.0.1:1: each call fails once, without a panic.
    let pairs = [KahunaKeyValuePair {
        key: bytes(b"k"),
        value: bytes(b"v"),
    }];
    let set = KahunaSetManyRequest {
        items: pairs.as_ptr(),
        items_len: 1,
    };
    let del = KahunaDeleteManyRequest {
        keys: good_keys.as_ptr(),
        keys_len: 2,
    };
    let get_req = get(&good_keys, 2, 0);
    let range_req = range(b"a", 0);
    let calls: [(&str, Call); 4] = [
        (
            "get many",
            Box::new(|ud| unsafe { kahuna_kv_get_many(c, &get_req, ptr::null(), ud, Some(record)) }),
        ),
        (
            "set many",
            Box::new(|ud| unsafe { kahuna_kv_set_many(c, &set, ptr::null(), ud, Some(record)) }),
        ),
        (
            "delete many",
            Box::new(|ud| unsafe { kahuna_kv_delete_many(c, &del, ptr::null(), ud, Some(record)) }),
        ),
        (
            "scan range",
            Box::new(|ud| unsafe { kahuna_kv_scan_range(c, &range_req, ptr::null(), ud, Some(record)) }),
        ),
    ];
    for (what, call) in calls {
        let (status, message) = once(call);
        assert_ne!(status, KAHUNA_STATUS_OK, "{what}: {message}");
        assert_ne!(status, KAHUNA_STATUS_PANIC, "{what}: {message}");
    }
    unsafe { kahuna_client_free(c) };
}

/// The checked-in C# declarations are what this build generated, and every exported
/// function is declared in them.
#[test]
fn generated_csharp_is_fresh() {
    let codes = include_str!(concat!(env!("OUT_DIR"), "/KahunaErrorCode.g.cs"));
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../dotnet/src/KahunaErrorCode.g.cs");
    assert!(
        codes == std::fs::read_to_string(path).unwrap_or_default(),
        "dotnet/src/KahunaErrorCode.g.cs is stale: run `KAHUNA_REGENERATE_BINDINGS=1 cargo build --workspace --all-targets` and commit it"
    );
    let generated = include_str!(concat!(env!("OUT_DIR"), "/NativeMethods.g.cs"));
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../dotnet/src/NativeMethods.g.cs");
    let checked_in = std::fs::read_to_string(path).unwrap_or_default();
    assert!(
        generated == checked_in,
        "dotnet/src/NativeMethods.g.cs is stale: run `KAHUNA_REGENERATE_BINDINGS=1 cargo build --workspace --all-targets` and commit it"
    );
    let source = [
        include_str!("lib.rs"),
        include_str!("watch.rs"),
        include_str!("election.rs"),
        include_str!("batch.rs"),
        include_str!("ratelimit.rs"),
    ]
    .join("\n");
    let mut exports = 0;
    let mut lines = source.lines();
    while let Some(line) = lines.next() {
        if line.trim() != "#[no_mangle]" {
            continue;
        }
        let Some(sig) = lines.next() else { break };
        let Some(name) = sig.split("fn ").nth(1).and_then(|s| s.split('(').next()) else {
            panic!("cannot read the exported function after #[no_mangle]: {sig}");
        };
        exports += 1;
        assert!(
            checked_in.contains(&format!("EntryPoint = \"{name}\"")),
            "exported function {name} is missing from dotnet/src/NativeMethods.g.cs"
        );
    }
    assert!(exports >= 20, "found only {exports} exports");
}
