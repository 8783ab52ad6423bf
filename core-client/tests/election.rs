//! Leader election against a real 3-member cluster: one leader at a time, by each
//! leader's own clock, while candidates churn, the cluster's Raft leader is killed,
//! and a leader process is paused (it finds itself deposed when it resumes) and
//! killed; epochs strictly increase; observers follow every leader in order; values
//! are proclaimed.

mod common;

use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kahuna_client::{CampaignOptions, Client, Leader};
use kahuna_testkit::Cluster;

const NAME: &str = "elections/scheduler";

fn options(ttl_ms: u64) -> CampaignOptions {
    CampaignOptions {
        ttl: Duration::from_millis(ttl_ms),
        wait: None,
    }
}

/// One in-process leadership as its holder saw it: (epoch, elected, last trusted).
type Terms = Arc<Mutex<Vec<(u64, Instant, Instant)>>>;

/// A candidate that campaigns, leads for `hold` (or until deposed), resigns, and
/// campaigns again until `stop`.
fn candidate(
    client: Client,
    id: usize,
    hold: Duration,
    terms: Terms,
    stop: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        while !stop.load(Ordering::Relaxed) {
            let leadership = match client.campaign(NAME, format!("candidate-{id}"), options(2000)).await {
                Ok(Some(l)) => l,
                Ok(None) => continue,
                // The cluster is failing over: campaign again.
                Err(_) => continue,
            };
            let elected = Instant::now();
            let mut trusted = elected;
            let until = elected + hold;
            while Instant::now() < until && leadership.is_leader() {
                trusted = trusted.max(Instant::now() + leadership.guard().trusted_for());
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            let resigned = Instant::now();
            let end = if leadership.is_leader() {
                resigned.min(trusted)
            } else {
                trusted
            };
            terms.lock().unwrap().push((leadership.epoch(), elected, end));
            let _ = leadership.resign().await;
        }
    })
}

/// `kahuna elect` in its own process, appending its epoch to `file` once elected.
fn cli_candidate(endpoints: &str, file: &std::path::Path) -> std::process::Child {
    common::kahuna(endpoints)
        .args(["elect", NAME, "--value", "cli", "--ttl", "2s", "--"])
        .args([
            "sh",
            "-c",
            &format!("echo $KAHUNA_ELECTION_EPOCH >> {}; sleep 60", file.display()),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("kahuna elect")
}

async fn elected_epoch(file: &std::path::Path, within: Duration) -> u64 {
    let started = Instant::now();
    loop {
        if let Some(e) = std::fs::read_to_string(file)
            .ok()
            .and_then(|s| s.lines().last().and_then(|l| l.trim().parse().ok()))
        {
            return e;
        }
        assert!(
            started.elapsed() < within,
            "the CLI candidate was not elected within {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_leader_at_a_time_across_kills_and_pauses() {
    let mut cluster = Cluster::start(3, "memory", &[]).await;
    let opts = common::patient();
    let endpoints = common::endpoints(&cluster).join(",");
    let dir = tempfile::tempdir().expect("temp dir");

    // An observer from the start.
    let watcher = common::client_with(&cluster, opts.clone()).await;
    let mut observer = watcher.observe(NAME).await.expect("observe");
    assert_eq!(observer.next().await.expect("first"), None, "nobody leads yet");
    let seen: Arc<Mutex<Vec<Option<Leader>>>> = Arc::default();
    let following = {
        let seen = seen.clone();
        tokio::spawn(async move {
            loop {
                match observer.next().await {
                    Ok(l) => seen.lock().unwrap().push(l),
                    Err(e) => panic!("observer failed: {e}"),
                }
            }
        })
    };

    let terms: Terms = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for id in 0..3 {
        let client = common::client_with(&cluster, opts.clone()).await;
        tasks.push(candidate(
            client,
            id,
            Duration::from_millis(300),
            terms.clone(),
            stop.clone(),
        ));
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    // The cluster's own leader dies while candidates churn.
    let raft_leader = cluster.wait_leader(Duration::from_secs(30)).await;
    cluster.kill(raft_leader);
    tokio::time::sleep(Duration::from_secs(3)).await;

    // A leader process paused: the others wait out its lease; resumed, it finds
    // itself deposed and stops its command (exit 4).
    let paused_file = dir.path().join("paused");
    let mut paused = cli_candidate(&endpoints, &paused_file);
    let paused_epoch = elected_epoch(&paused_file, Duration::from_secs(30)).await;
    Command::new("kill")
        .args(["-STOP", &paused.id().to_string()])
        .status()
        .expect("SIGSTOP");
    let paused_at = Instant::now();
    tokio::time::sleep(Duration::from_secs(4)).await;
    Command::new("kill")
        .args(["-CONT", &paused.id().to_string()])
        .status()
        .expect("SIGCONT");
    let status = tokio::task::spawn_blocking(move || paused.wait())
        .await
        .expect("join")
        .expect("wait");
    assert_eq!(status.code(), Some(4), "a deposed leader's `kahuna elect` exits 4");

    // A leader process killed: the next leader comes once its lease runs out.
    let killed_file = dir.path().join("killed");
    let mut killed = cli_candidate(&endpoints, &killed_file);
    let killed_epoch = elected_epoch(&killed_file, Duration::from_secs(30)).await;
    killed.kill().expect("SIGKILL");
    let _ = killed.wait();
    let killed_at = Instant::now();
    tokio::time::sleep(Duration::from_secs(4)).await;
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        let _ = tokio::time::timeout(Duration::from_secs(30), t).await;
    }

    let mut terms = terms.lock().unwrap().clone();
    terms.sort_by_key(|t| t.1);
    assert!(terms.len() >= 5, "only {} in-process terms", terms.len());
    for w in terms.windows(2) {
        assert!(
            w[1].1 >= w[0].2,
            "two leaders at once: epoch {} trusted until {:?} after epoch {} was elected",
            w[0].0,
            w[0].2,
            w[1].0
        );
        assert!(w[1].0 > w[0].0, "epochs must rise: {} then {}", w[0].0, w[1].0);
    }
    // The in-process leaders around the paused and the killed one: none elected while
    // those could still believe they led (their lease: 2 s, renewed every ~0.7 s).
    for (epoch, at) in [(paused_epoch, paused_at), (killed_epoch, killed_at)] {
        let next = terms.iter().find(|t| t.0 > epoch).expect("a leader after the CLI one");
        assert!(
            next.1 >= at + Duration::from_millis(1000),
            "epoch {} elected {:?} after epoch {epoch} stopped renewing",
            next.0,
            next.1.saturating_duration_since(at)
        );
        assert!(terms.iter().all(|t| t.0 != epoch), "an epoch is one leader's");
    }
    // The observer saw leaders in rising epochs, among them the CLI ones.
    following.abort();
    let seen = seen.lock().unwrap().clone();
    let epochs: Vec<u64> = seen.iter().flatten().map(|l| l.epoch).collect();
    assert!(
        epochs.windows(2).all(|w| w[0] < w[1]),
        "observed epochs go back: {epochs:?}"
    );
    assert!(epochs.len() >= 5, "observed only {epochs:?}");
    assert!(
        seen.iter()
            .flatten()
            .any(|l| l.value == b"cli" && l.epoch == paused_epoch),
        "the paused CLI leader was observed with its value"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_proclaims_observers_follow_and_others_are_refused() {
    let cluster = Cluster::start(3, "memory", &[]).await;
    let a = common::client(&cluster).await;
    let b = common::client(&cluster).await;
    let first = a
        .campaign(NAME, "a:1", options(1500))
        .await
        .expect("campaign")
        .expect("elected");
    let mut observer = b.observe(NAME).await.expect("observe");
    // The member observed may not have applied the grant yet: then "none" comes first.
    let now = loop {
        if let Some(l) = observer.next().await.expect("observe") {
            break l;
        }
    };
    assert_eq!((now.epoch, now.value_str().as_ref()), (first.epoch(), "a:1"));
    assert_eq!(
        b.election_leader(NAME).await.expect("leader").map(|l| l.epoch),
        Some(first.epoch())
    );

    first.proclaim("a:2").await.expect("proclaim");
    let changed = observer.next().await.expect("observe").expect("a leader");
    assert_eq!((changed.epoch, changed.value_str().as_ref()), (first.epoch(), "a:2"));

    // b waits its turn; a resigns; b leads with a larger epoch and its own value.
    let waiting = tokio::spawn({
        let b = b.clone();
        async move { b.campaign(NAME, "b:1", options(1500)).await }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let a_epoch = first.epoch();
    assert!(first.resign().await.expect("resign"));
    let second = waiting.await.expect("join").expect("campaign").expect("elected");
    assert!(second.epoch() > a_epoch);
    let next = observer.next().await.expect("observe").expect("a leader");
    assert_eq!((next.epoch, next.value_str().as_ref()), (second.epoch(), "b:1"));

    // A campaign that may not wait long enough is not elected.
    let c = common::client(&cluster).await;
    let gave_up = c
        .campaign(
            NAME,
            "c",
            CampaignOptions {
                ttl: Duration::from_secs(2),
                wait: Some(Duration::from_millis(300)),
            },
        )
        .await
        .expect("campaign");
    assert!(gave_up.is_none());
    // A proclaim by anyone but the leader is refused, naming the leader.
    let mut locks = cluster.locks(1).await;
    let refused = locks
        .proclaim(kahuna_proto::v1::ProclaimRequest {
            resource: NAME.as_bytes().to_vec(),
            owner: b"intruder".to_vec(),
            value: b"x".to_vec(),
            request_id: None,
        })
        .await
        .expect("proclaim")
        .into_inner();
    assert!(!refused.proclaimed);
    assert_eq!(refused.refusal, kahuna_proto::v1::LockRefusal::HeldByOther as i32);
    assert_eq!(
        refused.lock.map(|l| (l.fencing_token, l.value)),
        Some((second.epoch(), b"b:1".to_vec()))
    );
    assert!(second.resign().await.expect("resign"));
    assert_eq!(
        observer.next().await.expect("observe"),
        None,
        "nobody leads after the resign"
    );
}
