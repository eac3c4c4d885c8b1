package clustertest

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// Process is a binary the test runs: its output is kept and shown when the test fails, and it gets
// SIGTERM, as from a kubelet, when the test ends.
type Process struct {
	name   string
	cmd    *exec.Cmd
	exited chan struct{} // closed when the process has ended, err then set
	err    error
	once   sync.Once
	logs   syncBuffer
	// Addrs are the loopback addresses given to its listen flags (RunDeployment).
	Addrs map[string]string
}

// Run starts bin with args and env (added to this process's environment) until the test ends.
func Run(t testing.TB, name, bin string, env []string, args ...string) *Process {
	t.Helper()
	p := &Process{name: name, exited: make(chan struct{}), Addrs: map[string]string{}}
	p.cmd = exec.Command(bin, args...)
	p.cmd.Env = append(os.Environ(), env...)
	p.cmd.Stdout, p.cmd.Stderr = &p.logs, &p.logs
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(func() {
		p.Stop(t)
		if t.Failed() {
			t.Logf("--- %s log ---\n%s", name, tail(p.logs.String(), 4000))
		}
	})
	return p
}

// Stop sends SIGTERM and waits for the process to end, killing it after 15 seconds.
func (p *Process) Stop(t testing.TB) {
	p.once.Do(func() {
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.exited:
		case <-time.After(15 * time.Second):
			_ = p.cmd.Process.Kill()
			<-p.exited
			t.Errorf("%s did not stop within 15s of SIGTERM", p.name)
		}
	})
}

// Logs is what the process has written so far.
func (p *Process) Logs() string { return p.logs.String() }

// WaitHTTP waits until GET url answers 200, failing at once if the process exits.
func (p *Process) WaitHTTP(t testing.TB, url string) {
	t.Helper()
	Eventually(t, p.name+" ready at "+url, time.Minute, func() error {
		select {
		case <-p.exited:
			return Stop{fmt.Errorf("%s exited: %v\n%s", p.name, p.err, tail(p.logs.String(), 4000))}
		default:
		}
		resp, err := http.Get(url)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("%s", resp.Status)
		}
		return nil
	})
}

// ListenFlags are the listen-address flags of tracekit's subcommands. Pods have their own network;
// here each gets a free loopback port instead.
var ListenFlags = []string{"--addr", "--grpc-addr", "--metrics-bind-address", "--health-probe-bind-address"}

// Deployment says how to run a Deployment's container.
type Deployment struct {
	Namespace, Name string
	Env             []string          // added to the container's environment
	Overrides       map[string]string // flag → value replacing the one the Deployment passes
	// ProbePort names the container port whose readiness probe says the process is up; the default
	// is the port of the readiness probe.
	ProbePort string
}

// RunDeployment does what a kubelet would with the first container of a Deployment: its arguments
// and environment as written, Secret references resolved, ConfigMap volumes written to a directory
// standing in for their mount path (environment values under it rewritten to match). Only the
// listen flags change, to free loopback addresses (Process.Addrs). It returns once the readiness
// probe answers.
func (c *Cluster) RunDeployment(t testing.TB, ctx context.Context, bin string, d Deployment) *Process {
	t.Helper()
	dep := &appsv1.Deployment{}
	if err := c.Client.Get(ctx, client.ObjectKey{Namespace: d.Namespace, Name: d.Name}, dep); err != nil {
		t.Fatal(err)
	}
	pod := dep.Spec.Template.Spec
	ctr := pod.Containers[0]
	mounts := c.materialise(t, ctx, dep)
	env := slices.Clone(d.Env)
	for _, e := range ctr.Env {
		v := e.Value
		if ref := e.ValueFrom; ref != nil && ref.SecretKeyRef != nil {
			s := &corev1.Secret{}
			if err := c.Client.Get(ctx, client.ObjectKey{Namespace: d.Namespace, Name: ref.SecretKeyRef.Name}, s); err != nil {
				t.Fatalf("%s: env %s: %v", d.Name, e.Name, err)
			}
			v = string(s.Data[ref.SecretKeyRef.Key])
		}
		for mountPath, local := range mounts {
			if rest, ok := strings.CutPrefix(v, mountPath+"/"); ok {
				v = filepath.Join(local, rest)
			}
		}
		env = append(env, e.Name+"="+v)
	}
	args, listen, addrs := d.args(t, ctr.Args)
	p := Run(t, d.Name, bin, env, args...)
	p.Addrs = addrs

	probe := ctr.ReadinessProbe
	if probe == nil || probe.HTTPGet == nil {
		t.Fatalf("%s: no HTTP readiness probe", d.Name)
	}
	portName := d.ProbePort
	if portName == "" {
		portName = probe.HTTPGet.Port.String()
	}
	var addr string
	for _, port := range ctr.Ports {
		for flag, value := range listen {
			if port.Name == portName && strings.HasSuffix(value, fmt.Sprintf(":%d", port.ContainerPort)) {
				addr = addrs[flag]
			}
		}
	}
	if addr == "" || probe.HTTPGet.Port.String() != portName {
		t.Fatalf("%s: no readiness probe on a listen flag's port %q", d.Name, portName)
	}
	p.WaitHTTP(t, "http://"+addr+probe.HTTPGet.Path)
	return p
}

// args applies the overrides and moves the listen flags to free loopback addresses. It returns the
// arguments, the Deployment's address of each listen flag and the address it got here.
func (d Deployment) args(t testing.TB, given []string) (args []string, listen, addrs map[string]string) {
	t.Helper()
	args, listen, addrs = slices.Clone(given), map[string]string{}, map[string]string{}
	set := map[string]string{}
	for k, v := range d.Overrides {
		set[k] = v
	}
	for i, a := range args {
		flag, value, ok := strings.Cut(a, "=")
		if !ok {
			continue
		}
		if slices.Contains(ListenFlags, flag) {
			listen[flag], addrs[flag] = value, FreeAddr(t)
			args[i] = flag + "=" + addrs[flag]
		}
		if v, ok := set[flag]; ok {
			args[i] = flag + "=" + v
			delete(set, flag)
		}
	}
	if len(set) > 0 {
		t.Fatalf("%s: the Deployment no longer passes %v", d.Name, set)
	}
	return args, listen, addrs
}

// materialise writes the ConfigMap volumes the container mounts into local directories and returns
// them by mount path.
func (c *Cluster) materialise(t testing.TB, ctx context.Context, dep *appsv1.Deployment) map[string]string {
	t.Helper()
	pod := dep.Spec.Template.Spec
	mounts := map[string]string{}
	dir := t.TempDir()
	for _, vm := range pod.Containers[0].VolumeMounts {
		for _, v := range pod.Volumes {
			if v.Name != vm.Name || v.ConfigMap == nil {
				continue
			}
			local := filepath.Join(dir, vm.Name)
			if err := os.MkdirAll(local, 0o755); err != nil {
				t.Fatal(err)
			}
			mounts[vm.MountPath] = local
			cm := &corev1.ConfigMap{}
			if err := c.Client.Get(ctx, client.ObjectKey{Namespace: dep.Namespace, Name: v.ConfigMap.Name}, cm); err != nil {
				t.Fatalf("%s: volume %s: %v", dep.Name, vm.Name, err)
			}
			for k, data := range cm.Data {
				if err := os.WriteFile(filepath.Join(local, k), []byte(data), 0o644); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	return mounts
}

// FreeAddr returns a loopback address nothing listens on.
func FreeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func tail(s string, n int) string {
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}

// syncBuffer collects a process's output while it runs.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
