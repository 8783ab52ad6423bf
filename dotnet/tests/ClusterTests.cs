// NUnit 2.6 tests of GetClusterStatus and GetMembers against the real 3-node cluster of
// dotnet/test.sh (cluster.sh: member N listens for clients on the Nth endpoint and for peers
// on the port after it). Members are killed and restarted here, each test leaving all three
// running and caught up. Mono mcs C# subset.
using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.Linq;
using System.Threading.Tasks;
using NUnit.Framework;
using Kahuna.Client;

namespace Kahuna.Client.Tests
{
    [TestFixture]
    public class ClusterTests
    {
        /// <summary>Member id to client endpoint, as cluster.sh numbers them.</summary>
        private static Dictionary<long, string> EndpointsById()
        {
            var e = Cluster.Endpoints;
            var byId = new Dictionary<long, string>();
            for (int i = 0; i < e.Length; i++) byId[i + 1] = e[i];
            return byId;
        }

        /// <summary>The peer address cluster.sh gives a member: its client port plus one.</summary>
        private static string PeerOf(string endpoint)
        {
            int colon = endpoint.LastIndexOf(':');
            return endpoint.Substring(0, colon + 1) + (int.Parse(endpoint.Substring(colon + 1)) + 1);
        }

        /// <summary>A client that talks to <paramref name="endpoint"/> only: the client learns no
        /// other member on its own, so every status it reads is that member's.</summary>
        private static KahunaClient OnlyTo(string endpoint, TimeSpan timeout)
        {
            var o = new KahunaClientOptions();
            o.OperationTimeout = timeout;
            return new KahunaClient(endpoint, o);
        }

        /// <summary>Each member's own status, polled until all three name the same leader in the
        /// same term (a member restarted by an earlier test may still be catching up).</summary>
        private static async Task<KahunaClusterStatus[]> StatusOfEachMember()
        {
            var byId = EndpointsById();
            var clients = byId.OrderBy(p => p.Key).Select(p => OnlyTo(p.Value, TimeSpan.FromSeconds(5))).ToArray();
            try
            {
                var until = DateTime.UtcNow.AddSeconds(20);
                while (true)
                {
                    KahunaClusterStatus[] all = null;
                    try
                    {
                        all = await Task.WhenAll(clients.Select(c => c.GetClusterStatus()));
                    }
                    catch (KahunaException) when (DateTime.UtcNow < until)
                    {
                    }
                    if (all != null)
                    {
                        bool agreed = all.All(s => s.LeaderId != 0 && s.LeaderId == all[0].LeaderId && s.Term == all[0].Term);
                        if (agreed || DateTime.UtcNow >= until) return all;
                    }
                    await Task.Delay(200);
                }
            }
            finally
            {
                foreach (var c in clients) c.Dispose();
            }
        }

        /// <summary>Restarts member <paramref name="id"/> and waits until it answers in the leader's term.</summary>
        private static async Task Restart(long id)
        {
            Cluster.Run("start " + id);
            var all = await StatusOfEachMember();
            Assert.IsTrue(all.All(s => s.Term == all[0].Term && s.LeaderId == all[0].LeaderId),
                "member " + id + " did not rejoin: " + string.Join("; ", all.Select(s => s.MemberId + " term " + s.Term + " leader " + s.LeaderId)));
        }

        [Test]
        public async Task A_StatusNamesTheLeaderAmongThreeVotersWithTheirAddresses()
        {
            var byId = EndpointsById();
            int leader = Cluster.Leader();   // as the CLI sees it
            using (var c = Cluster.Client())
            {
                var s = await c.GetClusterStatus();
                Assert.AreEqual(leader, s.LeaderId, "the leader the CLI reports");
                Assert.Greater(s.Term, 0);
                Assert.IsTrue(byId.ContainsKey(s.MemberId), "answered by member " + s.MemberId);
                Assert.AreEqual(s.MemberId == s.LeaderId ? "leader" : "follower", s.State);
                Assert.AreEqual(3, s.Members.Count, string.Join("; ", s.Members));
                foreach (var m in s.Members)
                {
                    Assert.AreEqual(KahunaMemberRole.Voter, m.Role, m.ToString());
                    Assert.IsTrue(m.IsVoter, m.ToString());
                    Assert.AreEqual(byId[m.Id], m.ClientAddress, m.ToString());
                    Assert.AreEqual(PeerOf(byId[m.Id]), m.PeerAddress, m.ToString());
                }
                CollectionAssert.AreEquivalent(byId.Keys.ToArray(), s.Members.Select(m => m.Id).ToArray());
                Assert.IsTrue(s.Members.Any(m => m.Id == s.LeaderId), "the leader is one of the members");
                // Log indices as a member reports them: a snapshot covers only applied entries, and
                // nothing is applied that is not in the log.
                Assert.Greater(s.AppliedIndex, 0);
                Assert.LessOrEqual(s.AppliedIndex, s.LastLogIndex);
                Assert.LessOrEqual(s.SnapshotIndex, s.AppliedIndex);

                // A write is a new log entry: the answering member's log and applied index move past
                // where they were.
                await c.SetKeyValue(Cluster.Unique("cluster"), "x");
                var after = await c.GetClusterStatus();
                var until = DateTime.UtcNow.AddSeconds(5);
                while (after.AppliedIndex <= s.AppliedIndex && DateTime.UtcNow < until)
                {
                    await Task.Delay(50);
                    after = await c.GetClusterStatus();
                }
                Assert.AreEqual(s.MemberId, after.MemberId);
                Assert.AreEqual(s.LeaderId, after.LeaderId);
                Assert.Greater(after.AppliedIndex, s.AppliedIndex);
                Assert.Greater(after.LastLogIndex, s.LastLogIndex);
                Assert.LessOrEqual(after.AppliedIndex, after.LastLogIndex);
            }
        }

        [Test]
        public async Task B_GetMembersListsThreeVoters()
        {
            var byId = EndpointsById();
            using (var c = Cluster.Client())
            {
                var members = await c.GetMembers();
                Assert.AreEqual(3, members.Count, string.Join("; ", members));
                Assert.IsTrue(members.All(m => m.Role == KahunaMemberRole.Voter), string.Join("; ", members));
                CollectionAssert.AreEquivalent(byId.Keys.ToArray(), members.Select(m => m.Id).ToArray());
                CollectionAssert.AreEquivalent(byId.Values.ToArray(), members.Select(m => m.ClientAddress).ToArray());
                CollectionAssert.AreEquivalent(byId.Values.Select(PeerOf).ToArray(), members.Select(m => m.PeerAddress).ToArray());
                // The older name gives the same list.
                var again = await c.GetClusterMembers();
                CollectionAssert.AreEquivalent(members.Select(m => m.ToString()).ToArray(), again.Select(m => m.ToString()).ToArray());
            }
        }

        [Test]
        public async Task C_EveryMemberAgreesOnTermAndLeader()
        {
            var all = await StatusOfEachMember();
            var detail = string.Join("; ", all.Select(s => s.MemberId + " " + s.State + " term " + s.Term + " leader " + s.LeaderId));
            CollectionAssert.AreEqual(new long[] { 1, 2, 3 }, all.Select(s => s.MemberId).ToArray(), "each client answered by its own member: " + detail);
            Assert.AreEqual(1, all.Select(s => s.Term).Distinct().Count(), detail);
            Assert.AreEqual(1, all.Select(s => s.LeaderId).Distinct().Count(), detail);
            Assert.AreEqual(Cluster.Leader(), all[0].LeaderId, detail);
            Assert.AreEqual(1, all.Count(s => s.State == "leader"), detail);
            Assert.AreEqual(all[0].LeaderId, all.Single(s => s.State == "leader").MemberId, detail);
            Assert.AreEqual(2, all.Count(s => s.State == "follower"), detail);
            foreach (var s in all) Assert.AreEqual(3, s.Members.Count(m => m.IsVoter), detail);
        }

        /// <summary>A client that knows only one member gets that member's status; once the member
        /// is killed it has nowhere else to go, and the call fails at its deadline with the typed,
        /// retryable timeout (the core client retries an unreachable member until then).</summary>
        [Test]
        public async Task D_StatusThroughAKilledMemberFailsWithATypedRetryableError()
        {
            var byId = EndpointsById();
            long leader = Cluster.Leader();
            long follower = byId.Keys.First(id => id != leader);
            using (var c = OnlyTo(byId[follower], TimeSpan.FromSeconds(3)))
            {
                var s = await c.GetClusterStatus();
                Assert.AreEqual(follower, s.MemberId);
                Assert.AreEqual("follower", s.State);
                Cluster.Run("kill " + follower);
                try
                {
                    var sw = Stopwatch.StartNew();
                    var e = Assert.Throws<KahunaException>(() => c.GetClusterStatus().GetAwaiter().GetResult());
                    Assert.AreEqual(KahunaErrorCode.Timeout, e.Code, e.Message);
                    Assert.IsTrue(e.IsRetryable, e.Message);
                    Assert.GreaterOrEqual(sw.ElapsedMilliseconds, 2500, "retried until the 3 s deadline");
                    Assert.Less(sw.ElapsedMilliseconds, 8000, "gave up at the deadline");
                    e = Assert.Throws<KahunaException>(() => c.GetMembers().GetAwaiter().GetResult());
                    Assert.AreEqual(KahunaErrorCode.Timeout, e.Code, e.Message);
                }
                finally
                {
                    await Restart(follower);
                }
                // The same client reaches the member again once it is back.
                Assert.AreEqual(follower, (await c.GetClusterStatus()).MemberId);
            }
        }

        /// <summary>A client that knows every member reads the status from the leader; when the
        /// leader is killed the next call is answered by another member, and soon names a new
        /// leader in a later term, still with three voters (a dead member stays a member).</summary>
        [Test]
        public async Task E_StatusRoutesToAnotherMemberWhenTheLeaderIsKilled()
        {
            var byId = EndpointsById();
            long leader = Cluster.Leader();
            // The leader's endpoint first, so the first call is answered by the leader.
            var endpoints = new[] { byId[leader] }.Concat(byId.Where(p => p.Key != leader).Select(p => p.Value)).ToArray();
            var o = new KahunaClientOptions();
            o.OperationTimeout = TimeSpan.FromSeconds(10);
            using (var c = new KahunaClient(endpoints, o))
            {
                var before = await c.GetClusterStatus();
                Assert.AreEqual(leader, before.MemberId);
                Assert.AreEqual("leader", before.State);
                Cluster.Run("kill " + leader);
                try
                {
                    var s = await c.GetClusterStatus();
                    Assert.AreNotEqual(leader, s.MemberId, "answered by a member still running");
                    var until = DateTime.UtcNow.AddSeconds(15);
                    while ((s.LeaderId == 0 || s.LeaderId == leader) && DateTime.UtcNow < until)
                    {
                        await Task.Delay(200);
                        s = await c.GetClusterStatus();
                    }
                    Assert.AreNotEqual(0, s.LeaderId, "a new leader within 15 s");
                    Assert.AreNotEqual(leader, s.LeaderId);
                    Assert.Greater(s.Term, before.Term);
                    Assert.AreEqual(3, s.Members.Count(m => m.IsVoter), string.Join("; ", s.Members));
                    Assert.IsTrue(s.Members.Any(m => m.Id == leader), "the killed member is still a member");
                    var members = await c.GetMembers();
                    CollectionAssert.AreEquivalent(byId.Keys.ToArray(), members.Select(m => m.Id).ToArray());
                }
                finally
                {
                    await Restart(leader);
                }
                await Cluster.Healthy(c);
            }
        }

        /// <summary>The member's entry in a status.</summary>
        private static KahunaClusterMember Entry(KahunaClusterStatus s, long id) => s.Members.Single(m => m.Id == id);

        [Test]
        public async Task F_TransferLeaderMovesTheLeadershipToTheChosenVoter()
        {
            var byId = EndpointsById();
            long leader = Cluster.Leader();
            long target = byId.Keys.First(id => id != leader);
            using (var c = Cluster.Client())
            {
                var before = await c.GetClusterStatus();
                var t = await c.TransferLeader(target);
                Assert.AreEqual(target, t.LeaderId);
                Assert.Greater(t.Term, before.Term);
                var all = await StatusOfEachMember();
                var detail = string.Join("; ", all.Select(s => s.MemberId + " " + s.State + " term " + s.Term + " leader " + s.LeaderId));
                Assert.IsTrue(all.All(s => s.LeaderId == target && s.Term == t.Term), detail);
                Assert.AreEqual("leader", all.Single(s => s.MemberId == target).State, detail);
                Assert.AreEqual("follower", all.Single(s => s.MemberId == leader).State, "the old leader stays on: " + detail);
                Assert.AreEqual(target, Cluster.Leader(), "the CLI sees the new leader");

                // To the leader itself: nothing changes.
                var again = await c.TransferLeader(target);
                Assert.AreEqual(target, again.LeaderId);
                Assert.AreEqual(t.Term, again.Term);

                var e = Assert.Throws<KahunaException>(() => c.TransferLeader(99).GetAwaiter().GetResult());
                Assert.AreEqual(KahunaErrorCode.InvalidArgument, e.Code, e.Message);
                Assert.Throws<ArgumentOutOfRangeException>(() => c.TransferLeader(-1).GetAwaiter().GetResult());
                await Cluster.Healthy(c);
            }
        }

        /// <summary>Only the leader knows how far each member is behind: its status shows every
        /// member answering and caught up, a follower's shows no leader view, and a killed member
        /// stops answering and falls behind while the others write, then catches up after a restart.</summary>
        [Test]
        public async Task G_TheLeaderReportsEachMembersLagAndHealth()
        {
            var byId = EndpointsById();
            long leader = Cluster.Leader();
            long follower = byId.Keys.First(id => id != leader);
            using (var atLeader = OnlyTo(byId[leader], TimeSpan.FromSeconds(5)))
            using (var atFollower = OnlyTo(byId[follower], TimeSpan.FromSeconds(5)))
            {
                var s = await atLeader.GetClusterStatus();
                Assert.AreEqual(leader, s.MemberId);
                Assert.IsTrue(s.Members.All(m => m.HasLeaderView), string.Join("; ", s.Members));
                Assert.IsTrue(s.Members.All(m => m.IsAnswering), string.Join("; ", s.Members));
                Assert.IsTrue(s.Members.All(m => m.MatchedIndex <= s.LastLogIndex && m.MatchedIndex > 0));
                Assert.IsTrue(s.Members.All(m => m.Lag == s.LastLogIndex - m.MatchedIndex), "lag is the leader's last index less the matched one");
                Assert.AreEqual(0, Entry(s, leader).Lag, "the leader is not behind itself");
                Assert.AreEqual(s.LastLogIndex, Entry(s, leader).MatchedIndex);

                var f = await atFollower.GetClusterStatus();
                Assert.AreEqual(follower, f.MemberId);
                Assert.IsTrue(f.Members.All(m => !m.HasLeaderView && m.Lag == 0 && m.MatchedIndex == 0 && !m.IsAnswering),
                    "a follower knows no replication state");

                Cluster.Run("kill " + follower);
                try
                {
                    // Within an election timeout (1 s here) the leader sees it stop answering.
                    var until = DateTime.UtcNow.AddSeconds(10);
                    while (Entry(s, follower).IsAnswering && DateTime.UtcNow < until)
                    {
                        await Task.Delay(100);
                        s = await atLeader.GetClusterStatus();
                    }
                    Assert.IsFalse(Entry(s, follower).IsAnswering, Entry(s, follower).ToString());
                    Assert.GreaterOrEqual(Entry(s, follower).SinceLastAnswer, TimeSpan.FromSeconds(0.5));
                    for (int i = 0; i < 5; i++) await atLeader.SetKeyValue(Cluster.Unique("lag"), "x");
                    s = await atLeader.GetClusterStatus();
                    var dead = Entry(s, follower);
                    Assert.GreaterOrEqual(dead.Lag, 5, "five writes it did not get");
                    Assert.AreEqual(s.LastLogIndex - dead.MatchedIndex, dead.Lag);
                    var other = s.Members.Single(m => m.Id != leader && m.Id != follower);
                    Assert.IsTrue(other.IsAnswering, other.ToString());
                }
                finally
                {
                    await Restart(follower);
                }
                var caughtUp = DateTime.UtcNow.AddSeconds(10);
                s = await atLeader.GetClusterStatus();
                while ((!Entry(s, follower).IsAnswering || Entry(s, follower).Lag > 0) && DateTime.UtcNow < caughtUp)
                {
                    await Task.Delay(100);
                    s = await atLeader.GetClusterStatus();
                }
                Assert.IsTrue(Entry(s, follower).IsAnswering, "answering again after the restart");
                Assert.AreEqual(0, Entry(s, follower).Lag, "caught up after the restart");
            }
        }
    }
}
