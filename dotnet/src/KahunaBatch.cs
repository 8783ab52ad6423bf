// Results of the batch and range calls (GetManyKeyValues, GetByRange, ScanByRange).
// Written in the C# subset that Mono 6.8's mcs accepts (see shared/dotnet/RECIPE.md).
using System;
using System.Collections.Generic;
using System.Threading;
using System.Threading.Tasks;

namespace Kahuna.Client
{
    /// <summary>Keys read together by <see cref="KahunaClient.GetManyKeyValues"/>, all at one revision.</summary>
    public sealed class KahunaKeyValueBatch
    {
        private readonly Dictionary<string, KahunaKeyValue> _byKey;

        internal KahunaKeyValueBatch(IReadOnlyList<KahunaKeyValue> items, long revision)
        {
            Items = items;
            Revision = revision;
            _byKey = new Dictionary<string, KahunaKeyValue>(StringComparer.Ordinal);
            foreach (var kv in items) _byKey[kv.Key] = kv;
        }

        /// <summary>One entry per key asked for, in the order asked. A key that does not exist has
        /// <c>Success == false</c> and <c>Value == null</c> (as in Kahuna 1.x).</summary>
        public IReadOnlyList<KahunaKeyValue> Items { get; }

        /// <summary>The store revision every key was read at.</summary>
        public long Revision { get; }

        /// <summary>The entry of <paramref name="key"/> (null when it was not asked for).</summary>
        public KahunaKeyValue Get(string key)
        {
            KahunaKeyValue kv;
            return key != null && _byKey.TryGetValue(key, out kv) ? kv : null;
        }
    }

    /// <summary>
    /// Every key in a range <c>[startKey, endKey)</c>, read page by page as it is enumerated
    /// (<see cref="KahunaClient.ScanByRange"/>). Each page is a separate read; enumerate it again
    /// to read the range again.
    /// </summary>
    public sealed class KahunaRangeScan : IAsyncEnumerable<KahunaKeyValue>
    {
        private readonly KahunaClient _client;
        private readonly string _start;
        private readonly string _end;
        private readonly int _pageSize;
        private readonly bool _keysOnly;
        private readonly KeyValueDurability _durability;

        internal KahunaRangeScan(KahunaClient client, string start, string end, int pageSize, bool keysOnly,
            KeyValueDurability durability)
        {
            _client = client;
            _start = start;
            _end = end;
            _pageSize = pageSize;
            _keysOnly = keysOnly;
            _durability = durability;
        }

        /// <summary>The keys of the range in byte order; <paramref name="cancellationToken"/> cancels
        /// the page read in progress.</summary>
        public IAsyncEnumerator<KahunaKeyValue> GetAsyncEnumerator(CancellationToken cancellationToken = default)
        {
            return new Enumerator(this, cancellationToken);
        }

        private sealed class Enumerator : IAsyncEnumerator<KahunaKeyValue>
        {
            private readonly KahunaRangeScan _scan;
            private readonly CancellationToken _token;
            private IReadOnlyList<KahunaKeyValue> _page;
            private int _index;
            private byte[] _next;
            private bool _last;

            internal Enumerator(KahunaRangeScan scan, CancellationToken token)
            {
                _scan = scan;
                _token = token;
            }

            public KahunaKeyValue Current { get; private set; }

            public async ValueTask<bool> MoveNextAsync()
            {
                while (_page == null || _index >= _page.Count)
                {
                    if (_last) return false;
                    var page = await _scan._client.GetByRange(_scan._start, _scan._end, _scan._pageSize, _next,
                        _scan._keysOnly, _scan._durability, _token).ConfigureAwait(false);
                    _page = page.Items;
                    _index = 0;
                    _next = page.NextPageToken;
                    _last = _next == null;
                }
                Current = _page[_index++];
                return true;
            }

            public ValueTask DisposeAsync()
            {
                return default(ValueTask);
            }
        }
    }
}
