// kstatus prints what sigs.k8s.io/cli-utils' status.Compute (the library
// behind Flux's health checks and `kubectl` plugins such as kpt) says about
// Kubernetes objects, so the tests assert the real library's answer instead
// of a re-implementation of its rules.
//
// Input: the files named as arguments, else stdin; each a stream of JSON
// values or YAML documents, each one object or a List (`kubectl get -o
// json`), so `kubectl get sos,d365c -n orders -o json | kstatus` shows
// what Flux will see. Output on stdout: one JSON line per object,
// {"kind","namespace","name","status","message"}, in input order.
package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utiljson "k8s.io/apimachinery/pkg/util/json"
	"k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
)

// verdict is one output line.
type verdict struct {
	Kind      string `json:"kind"`
	Namespace string `json:"namespace,omitempty"`
	Name      string `json:"name"`
	Status    string `json:"status"`
	Message   string `json:"message"`
}

func main() {
	if err := inputs(os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "kstatus:", err)
		os.Exit(1)
	}
}

// inputs runs each file of paths in turn, or stdin when there is none.
func inputs(paths []string, out io.Writer) error {
	if len(paths) == 0 {
		return run(os.Stdin, out)
	}
	for _, p := range paths {
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		err = run(f, out)
		f.Close()
		if err != nil {
			return fmt.Errorf("%s: %w", p, err)
		}
	}
	return nil
}

func run(in io.Reader, out io.Writer) error {
	dec := yaml.NewYAMLOrJSONDecoder(bufio.NewReader(in), 4096)
	enc := json.NewEncoder(out)
	for {
		var raw json.RawMessage
		err := dec.Decode(&raw)
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("reading objects: %w", err)
		}
		// apimachinery's decoder keeps integers int64, as unstructured
		// accessors (metadata.generation) require.
		if len(raw) == 0 || string(raw) == "null" {
			continue // an empty YAML document
		}
		var obj map[string]interface{}
		if err := utiljson.Unmarshal(raw, &obj); err != nil {
			return fmt.Errorf("reading objects: %w", err)
		}
		for _, o := range flatten(obj) {
			v, err := compute(o)
			if err != nil {
				return err
			}
			if err := enc.Encode(v); err != nil {
				return err
			}
		}
	}
}

// flatten returns the items of a List, or the object itself.
func flatten(obj map[string]interface{}) []map[string]interface{} {
	items, ok := obj["items"].([]interface{})
	if !ok {
		return []map[string]interface{}{obj}
	}
	out := make([]map[string]interface{}, 0, len(items))
	for _, item := range items {
		if m, ok := item.(map[string]interface{}); ok {
			out = append(out, m)
		}
	}
	return out
}

func compute(obj map[string]interface{}) (verdict, error) {
	u := &unstructured.Unstructured{Object: obj}
	res, err := status.Compute(u)
	if err != nil {
		return verdict{}, fmt.Errorf("%s %s/%s: %w", u.GetKind(), u.GetNamespace(), u.GetName(), err)
	}
	return verdict{
		Kind:      u.GetKind(),
		Namespace: u.GetNamespace(),
		Name:      u.GetName(),
		Status:    res.Status.String(),
		Message:   res.Message,
	}, nil
}
