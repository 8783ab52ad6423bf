// Rate limiting: at most `limit` actions per key per fixed window, shared by every process
// using the same cluster. Each window has one counter key that expires with the window;
// taking a permit is a compare-and-set by revision, so two processes never both take the
// last permit, and a retried request is deduplicated by the server.
using System;
using System.Threading;
using System.Threading.Tasks;
using Kahuna.Client;

namespace Kahuna.Samples
{
    public sealed class RateLimiter
    {
        private readonly KahunaClient _client;
        private readonly long _limit;
        private readonly TimeSpan _window;

        public RateLimiter(KahunaClient client, long limit, TimeSpan window)
        {
            _client = client;
            _limit = limit;
            _window = window;
        }

        /// <summary>Takes a permit for <paramref name="key"/> in the current window: true if the action may go ahead.</summary>
        public async Task<bool> TryAcquire(string key, CancellationToken cancellationToken = default)
        {
            long windowNo = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds() / (long)Math.Max(1, _window.TotalMilliseconds);
            string counter = "ratelimit/" + key + "/" + windowNo;
            while (true)
            {
                var current = await _client.GetKeyValue(counter, KeyValueDurability.Persistent, cancellationToken);
                long used = current.Success ? current.ValueAsLong() : 0;
                if (used >= _limit) return false;
                // Revision 0 means "only if it does not exist yet".
                var r = await _client.TryCompareRevisionAndSetKeyValue(counter, (used + 1).ToString(),
                    current.Success ? current.Revision : 0, _window + _window, KeyValueDurability.Persistent,
                    cancellationToken);
                if (r.Success) return true;
                // Someone else took a permit at the same moment: look again.
            }
        }
    }
}
