package v1alpha1

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"sigs.k8s.io/yaml"
)

var crdFiles = []string{"tracekit.dev_tracekittenants.yaml", "tracekit.dev_tracekitdatabases.yaml"}

var repoRoot = filepath.Join("..", "..")

// The CRD and RBAC under config/ are the only copies: envtest loads them and the chart ships them.
// This fails when they no longer match the markers, i.e. someone forgot `make manifests`.
func TestGeneratedManifestsAreCurrent(t *testing.T) {
	gen := os.Getenv("CONTROLLER_GEN")
	if gen == "" {
		gen = filepath.Join(repoRoot, "bin", "controller-gen")
	}
	gen, err := filepath.Abs(gen)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(gen); err != nil {
		t.Fatalf("controller-gen not found at %s: run `make controller-gen` (or set CONTROLLER_GEN)", gen)
	}
	out := t.TempDir()
	cmd := exec.Command(gen, "rbac:roleName=tracekit-manager", "crd", "paths=./api/...", "paths=./controllers/...",
		"output:crd:artifacts:config="+filepath.Join(out, "crd"), "output:rbac:artifacts:config="+filepath.Join(out, "rbac"))
	cmd.Dir = repoRoot
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("controller-gen: %v\n%s", err, b)
	}
	pairs := map[string]string{filepath.Join(out, "rbac", "role.yaml"): filepath.Join(repoRoot, "config", "rbac", "role.yaml")}
	for _, f := range crdFiles {
		pairs[filepath.Join(out, "crd", f)] = filepath.Join(repoRoot, "config", "crd", "bases", f)
	}
	for generated, committed := range pairs {
		want, err := os.ReadFile(generated)
		if err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(committed)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s is out of date with the markers: run `make manifests`", committed)
		}
	}
}

// `kubectl explain` shows each field's description: every field of the spec and status has one.
func TestCRD_EveryFieldIsExplained(t *testing.T) {
	for _, f := range crdFiles {
		t.Run(f, func(t *testing.T) { everyFieldIsExplained(t, f) })
	}
}

func everyFieldIsExplained(t *testing.T, crdFile string) {
	b, err := os.ReadFile(filepath.Join(repoRoot, "config", "crd", "bases", crdFile))
	if err != nil {
		t.Fatal(err)
	}
	var crd apiextensionsv1.CustomResourceDefinition
	if err := yaml.Unmarshal(b, &crd); err != nil {
		t.Fatal(err)
	}
	root := crd.Spec.Versions[0].Schema.OpenAPIV3Schema
	// Named fields need a description; list items and map values are explained by their field.
	var walk func(path string, s *apiextensionsv1.JSONSchemaProps, named bool)
	walk = func(path string, s *apiextensionsv1.JSONSchemaProps, named bool) {
		if named && strings.TrimSpace(s.Description) == "" {
			t.Errorf("%s has no description", path)
		}
		for name, p := range s.Properties {
			walk(path+"."+name, &p, true)
		}
		if s.Items != nil && s.Items.Schema != nil {
			walk(path+"[]", s.Items.Schema, false)
		}
		if s.AdditionalProperties != nil && s.AdditionalProperties.Schema != nil {
			walk(path+"{}", s.AdditionalProperties.Schema, false)
		}
	}
	for _, top := range []string{"spec", "status"} {
		s := root.Properties[top]
		walk(top, &s, true)
	}
}
