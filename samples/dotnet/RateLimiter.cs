// Rate limiting: at most `limit` requests per user in any hour, shared by every process using
// the same cluster, with the package's limiters (Kahuna.Client.RateLimiting). Each decision
// is one round trip to the cluster's own limiter, decided atomically, so two processes never
// both take the last permit.
//
// A sliding window, not a fixed one: a fixed window starts afresh at each boundary, so a burst
// that straddles one gets up to twice the limit. The sliding window counts the previous window
// for the part of it still inside the last hour, so a burst of `limit` requests or more gets
// exactly `limit` permits unless it lasts longer than an hour / `limit`.
using System;
using System.Threading;
using System.Threading.Tasks;
using Kahuna.Client;
using Kahuna.Client.RateLimiting;

namespace Kahuna.Samples
{
    public sealed class RateLimiter
    {
        private readonly KahunaSlidingWindowRateLimiter _perHour;

        public RateLimiter(KahunaClient client, string name, long limit)
        {
            _perHour = new KahunaSlidingWindowRateLimiter(client, name, limit, TimeSpan.FromHours(1));
        }

        /// <summary>Takes a permit for <paramref name="user"/> in the last hour: true if the request may go ahead.</summary>
        public async Task<bool> TryAcquire(string user, CancellationToken cancellationToken = default)
        {
            var decision = await _perHour.TryAcquire(user, 1, cancellationToken);
            if (!decision.IsAllowed)
                Console.WriteLine("429 for " + user + ": retry after " + decision.RetryAfter.TotalSeconds.ToString("F0") + " s");
            return decision.IsAllowed;
        }
    }
}
