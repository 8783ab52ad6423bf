package main

import (
	"testing"
	"time"
)

func op(client int, kind, key, value, expected string, call, ret int64) Op {
	return Op{Client: client, Op: kind, Key: key, Value: value, Expected: expected, Call: call, Return: ret, OutOk: true}
}

func get(client int, key, value string, call, ret int64) Op {
	return Op{Client: client, Op: "get", Key: key, OutValue: value, OutExists: value != "", Call: call, Return: ret}
}

// expect checks h and fails the test, saying what h is, unless the verdict is want.
func expect(t *testing.T, what string, h []Op, want string) Result {
	t.Helper()
	r := Check(h, time.Second, "")
	if r.Result != want {
		t.Fatalf("%s: want %s, got %+v", what, want, r)
	}
	return r
}

func TestLinearizableHistoryPasses(t *testing.T) {
	expect(t, "a linearizable history", []Op{
		op(0, "set", "k", "a", "", 0, 10),
		get(1, "k", "a", 5, 15),
		op(1, "cas", "k", "b", "a", 20, 30),
		get(0, "k", "b", 31, 40),
	}, "Ok")
}

func TestStaleReadFails(t *testing.T) {
	r := expect(t, "a stale read", []Op{
		op(0, "set", "k", "a", "", 0, 10),
		op(0, "set", "k", "b", "", 20, 30),
		get(1, "k", "a", 40, 50), // b was acknowledged before this read began
	}, "Illegal")
	if len(r.Illegal) != 1 || r.Illegal[0].Key != "k" {
		t.Fatalf("want Illegal on k, got %+v", r)
	}
}

func TestUnknownWriteMayOrMayNotApply(t *testing.T) {
	lost := op(0, "set", "k", "x", "", 0, 5)
	lost.Unknown = true
	applied := []Op{op(1, "set", "k", "a", "", 0, 1), lost, get(1, "k", "x", 10, 20)}
	expect(t, "an unknown write may have applied", applied, "Ok")
	notApplied := []Op{op(1, "set", "k", "a", "", 0, 1), lost, get(1, "k", "a", 10, 20)}
	expect(t, "an unknown write may not have applied", notApplied, "Ok")
	// But once seen, it cannot be undone.
	flip := []Op{op(1, "set", "k", "a", "", 0, 1), lost, get(1, "k", "x", 10, 20), get(1, "k", "a", 30, 40)}
	expect(t, "an unknown write seen, then undone", flip, "Illegal")
}

func TestLostCasFails(t *testing.T) {
	// A CAS reported as succeeded whose value is never seen while a later read sees the old value.
	expect(t, "a lost CAS", []Op{
		op(0, "set", "k", "a", "", 0, 10),
		op(1, "cas", "k", "b", "a", 20, 30),
		get(0, "k", "a", 40, 50),
	}, "Illegal")
	// A CAS reported as failed although its expected value held throughout.
	expect(t, "a CAS failed against its expected value", []Op{
		op(0, "set", "k", "a", "", 0, 10),
		{Client: 1, Op: "cas", Key: "k", Value: "b", Expected: "a", Call: 20, Return: 30, OutOk: false},
		get(0, "k", "a", 40, 50),
	}, "Illegal")
}
