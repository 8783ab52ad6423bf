//! A leader-owned job: of many workers, only the one holding the job's lock runs it, and
//! every write it makes is fenced with the lock's token, so a worker that lost the lock
//! (paused, partitioned, slow) cannot overwrite the work of the next holder: the server
//! refuses its writes.

use std::time::Duration;

use kahuna_client::{Client, Error, LockOptions, Result, SetOptions};

/// What one worker did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobOutcome {
    /// Held the lock and finished every step; the token it wrote with.
    Completed { token: u64, steps: u32 },
    /// Someone else held the lock for all of `wait`.
    NotLeader,
    /// Lost the lock part way (the lost signal fired or a fenced write was refused).
    Lost { token: u64, steps_done: u32 },
}

/// Runs the job `job` as worker `worker`: takes the lock (waiting up to `wait`), then
/// writes `steps` progress records, each fenced with the lock's token.
pub async fn run_worker(
    client: &Client,
    job: &str,
    worker: &str,
    steps: u32,
    step_time: Duration,
    wait: Duration,
) -> Result<JobOutcome> {
    let options = LockOptions {
        ttl: Duration::from_secs(5),
        wait,
        retry: Duration::from_millis(100),
        ..LockOptions::default()
    };
    let guard = client.lock(&format!("jobs/{job}"), options).await?;
    let (Some(token), Some(fence)) = (guard.fencing_token(), guard.fence()) else {
        return Ok(JobOutcome::NotLeader);
    };
    let lost = guard.lost_token();
    for step in 0..steps {
        // Stop as soon as the lease can no longer be trusted.
        if lost.is_cancelled() {
            return Ok(JobOutcome::Lost {
                token,
                steps_done: step,
            });
        }
        tokio::select! {
            _ = lost.cancelled() => return Ok(JobOutcome::Lost { token, steps_done: step }),
            _ = tokio::time::sleep(step_time) => {}
        }
        let fenced = SetOptions {
            fence: Some(fence.clone()),
            ..SetOptions::default()
        };
        match client
            .set_with(&format!("jobs/{job}/progress"), format!("{worker}:{step}"), fenced)
            .await
        {
            Ok(_) => {}
            Err(Error::Fenced(_)) => {
                return Ok(JobOutcome::Lost {
                    token,
                    steps_done: step,
                })
            }
            Err(e) => return Err(e),
        }
    }
    guard.release().await?;
    Ok(JobOutcome::Completed { token, steps })
}
