// Leader-owned job: one worker at a time holds the job's lock and fences every write with
// the lock's token, so a worker that lost the lock (paused, partitioned) cannot overwrite
// the newer holder's results: the server refuses the stale token.
using System;
using System.Threading;
using System.Threading.Tasks;
using Kahuna.Client;

namespace Kahuna.Samples
{
    public static class LeaderJob
    {
        /// <summary>Runs one step of <paramref name="job"/> if this worker can take its lock;
        /// returns the fencing token it wrote with, or 0 when another worker holds the job.</summary>
        public static async Task<long> RunOnce(KahunaClient client, string job, string worker,
            CancellationToken cancellationToken = default)
        {
            // `await using` in C# 8; Mono's compiler has no `await using`, so try/finally.
            KahunaLock myLock = await client.GetOrCreateLock("jobs/" + job, expiry: TimeSpan.FromSeconds(10),
                cancellationToken: cancellationToken);
            try
            {
                if (!myLock.IsAcquired) return 0;
                // Stop the work the moment the lease can no longer be trusted.
                using (var work = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, myLock.Lost))
                {
                    await client.SetKeyValueFenced("jobs/" + job + "/state", "run by " + worker, myLock, default, work.Token);
                    await client.CreateTransaction().FencedBy(myLock)
                        .ThenSet("jobs/" + job + "/last-run", DateTimeOffset.UtcNow.ToString("o"))
                        .Commit(work.Token);
                }
                return myLock.FencingToken;
            }
            finally
            {
                await myLock.DisposeAsync();
            }
        }
    }
}
