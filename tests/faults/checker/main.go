// Command checker checks a register history recorded by the kahuna-faults harness for
// linearizability with Porcupine.
//
// Input (a JSON file, the first argument): a list of operations
//
//	{"client": 3, "op": "get"|"set"|"cas", "key": "...", "value": "...", "expected": "...",
//	 "out_value": "...", "out_exists": true, "out_ok": true, "unknown": false,
//	 "call": <ns>, "return": <ns>}
//
// Values are unique per write and never empty, so "" stands for "the key does not
// exist". An operation whose outcome is unknown (a write that failed or timed out and
// may or may not have been applied) has "unknown": true; it is given an infinite return
// time, so it may take effect at any point after its call or not at all.
//
// Output (stdout): one JSON object {"result": "Ok"|"Illegal"|"Unknown", "keys": N,
// "illegal": [{"key": ..., "ops": [...]}], "timed_out": [keys]}. With -html DIR, a
// Porcupine visualization of every illegal key is written there. Exit status 0 whatever
// the verdict (2 on bad input), so the caller reads the verdict from the JSON.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/anishathalye/porcupine"
)

// Op is one recorded operation.
type Op struct {
	Client    int    `json:"client"`
	Op        string `json:"op"`
	Key       string `json:"key"`
	Value     string `json:"value"`
	Expected  string `json:"expected"`
	OutValue  string `json:"out_value"`
	OutExists bool   `json:"out_exists"`
	OutOk     bool   `json:"out_ok"`
	Unknown   bool   `json:"unknown"`
	Call      int64  `json:"call"`
	Return    int64  `json:"return"`
}

type input struct {
	Op       string
	Key      string
	Value    string
	Expected string
}

type output struct {
	Value   string
	Exists  bool
	Ok      bool
	Unknown bool
}

// RegisterModel is a map of registers, one Porcupine partition per key. The state of a
// partition is the key's value ("" = absent).
var RegisterModel = porcupine.Model{
	Partition: func(history []porcupine.Operation) [][]porcupine.Operation {
		byKey := map[string][]porcupine.Operation{}
		var keys []string
		for _, op := range history {
			k := op.Input.(input).Key
			if _, ok := byKey[k]; !ok {
				keys = append(keys, k)
			}
			byKey[k] = append(byKey[k], op)
		}
		sort.Strings(keys)
		out := make([][]porcupine.Operation, 0, len(keys))
		for _, k := range keys {
			out = append(out, byKey[k])
		}
		return out
	},
	Init: func() interface{} { return "" },
	Step: func(state, in, out interface{}) (bool, interface{}) {
		s := state.(string)
		i := in.(input)
		o := out.(output)
		switch i.Op {
		case "get":
			if o.Unknown {
				return true, s
			}
			if !o.Exists {
				return s == "", s
			}
			return o.Value == s, s
		case "set":
			return true, i.Value
		case "cas":
			if s == i.Expected {
				return o.Unknown || o.Ok, i.Value
			}
			return o.Unknown || !o.Ok, s
		}
		return false, s
	},
	Equal: func(a, b interface{}) bool { return a.(string) == b.(string) },
	DescribeOperation: func(in, out interface{}) string {
		return describe(in.(input), out.(output))
	},
	DescribeState: func(state interface{}) string {
		if state.(string) == "" {
			return "<absent>"
		}
		return state.(string)
	},
}

func describe(i input, o output) string {
	res := ""
	switch {
	case o.Unknown:
		res = "?"
	case i.Op == "get" && !o.Exists:
		res = "<absent>"
	case i.Op == "get":
		res = o.Value
	default:
		res = fmt.Sprintf("%v", o.Ok)
	}
	switch i.Op {
	case "get":
		return fmt.Sprintf("get(%s) -> %s", i.Key, res)
	case "set":
		return fmt.Sprintf("set(%s, %s) -> %s", i.Key, i.Value, res)
	default:
		exp := i.Expected
		if exp == "" {
			exp = "<absent>"
		}
		return fmt.Sprintf("cas(%s, %s -> %s) -> %s", i.Key, exp, i.Value, res)
	}
}

// ToOperations turns recorded operations into Porcupine's, unknown ones with an
// infinite return time.
func ToOperations(ops []Op) []porcupine.Operation {
	out := make([]porcupine.Operation, 0, len(ops))
	for _, op := range ops {
		ret := op.Return
		if op.Unknown {
			ret = math.MaxInt64
		}
		out = append(out, porcupine.Operation{
			ClientId: op.Client,
			Input:    input{Op: op.Op, Key: op.Key, Value: op.Value, Expected: op.Expected},
			Output:   output{Value: op.OutValue, Exists: op.OutExists, Ok: op.OutOk, Unknown: op.Unknown},
			Call:     op.Call,
			Return:   ret,
		})
	}
	return out
}

// IllegalKey is one key whose history is not linearizable.
type IllegalKey struct {
	Key string   `json:"key"`
	Ops []string `json:"ops"`
}

// Result is the checker's verdict.
type Result struct {
	Result   string       `json:"result"`
	Keys     int          `json:"keys"`
	Ops      int          `json:"ops"`
	Illegal  []IllegalKey `json:"illegal"`
	TimedOut []string     `json:"timed_out"`
}

// Check checks every key on its own (so a verdict names the keys that failed) within
// `perKey` each.
func Check(ops []Op, perKey time.Duration, htmlDir string) Result {
	byKey := map[string][]Op{}
	var keys []string
	for _, op := range ops {
		if _, ok := byKey[op.Key]; !ok {
			keys = append(keys, op.Key)
		}
		byKey[op.Key] = append(byKey[op.Key], op)
	}
	sort.Strings(keys)
	res := Result{Result: "Ok", Keys: len(keys), Ops: len(ops), Illegal: []IllegalKey{}, TimedOut: []string{}}
	for _, k := range keys {
		kops := byKey[k]
		r, info := porcupine.CheckOperationsVerbose(RegisterModel, ToOperations(kops), perKey)
		switch r {
		case porcupine.Illegal:
			res.Result = "Illegal"
			sort.Slice(kops, func(a, b int) bool { return kops[a].Call < kops[b].Call })
			lines := make([]string, 0, len(kops))
			for _, op := range kops {
				ret := fmt.Sprintf("%d", op.Return)
				if op.Unknown {
					ret = "inf"
				}
				lines = append(lines, fmt.Sprintf("client %d [%d, %s] %s", op.Client, op.Call, ret,
					describe(input{Op: op.Op, Key: op.Key, Value: op.Value, Expected: op.Expected},
						output{Value: op.OutValue, Exists: op.OutExists, Ok: op.OutOk, Unknown: op.Unknown})))
			}
			res.Illegal = append(res.Illegal, IllegalKey{Key: k, Ops: lines})
			if htmlDir != "" {
				name := strings.Map(func(r rune) rune {
					if r == '/' || r == ' ' {
						return '_'
					}
					return r
				}, k)
				_ = porcupine.VisualizePath(RegisterModel, info, filepath.Join(htmlDir, name+".html"))
			}
		case porcupine.Unknown:
			if res.Result == "Ok" {
				res.Result = "Unknown"
			}
			res.TimedOut = append(res.TimedOut, k)
		}
	}
	return res
}

func main() {
	timeout := flag.Duration("timeout", 20*time.Second, "time limit per key")
	html := flag.String("html", "", "directory for visualizations of illegal keys")
	flag.Parse()
	if flag.NArg() != 1 {
		fmt.Fprintln(os.Stderr, "usage: checker [-timeout D] [-html DIR] HISTORY.json")
		os.Exit(2)
	}
	data, err := os.ReadFile(flag.Arg(0))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	var ops []Op
	if err := json.Unmarshal(data, &ops); err != nil {
		fmt.Fprintln(os.Stderr, "bad history:", err)
		os.Exit(2)
	}
	if *html != "" {
		_ = os.MkdirAll(*html, 0o755)
	}
	out, err := json.Marshal(Check(ops, *timeout, *html))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	fmt.Println(string(out))
}
