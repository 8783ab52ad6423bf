// Rate limiting: at most `limit` requests per user per minute, shared by every process using
// the same cluster, with the package's limiters (Kahuna.Client.RateLimiting). Each decision
// is one round trip to the cluster's own limiter, decided atomically, so two processes never
// both take the last permit.
using System;
using System.Threading;
using System.Threading.Tasks;
using Kahuna.Client;
using Kahuna.Client.RateLimiting;

namespace Kahuna.Samples
{
    public sealed class RateLimiter
    {
        private readonly KahunaFixedWindowRateLimiter _perMinute;

        public RateLimiter(KahunaClient client, string name, long limit)
        {
            _perMinute = new KahunaFixedWindowRateLimiter(client, name, limit, TimeSpan.FromMinutes(1));
        }

        /// <summary>Takes a permit for <paramref name="user"/> in the current minute: true if the request may go ahead.</summary>
        public async Task<bool> TryAcquire(string user, CancellationToken cancellationToken = default)
        {
            var decision = await _perMinute.TryAcquire(user, 1, cancellationToken);
            if (!decision.IsAllowed)
                Console.WriteLine("429 for " + user + ": retry after " + decision.RetryAfter.TotalSeconds.ToString("F0") + " s");
            return decision.IsAllowed;
        }
    }
}
