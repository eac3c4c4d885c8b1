package controllers

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	tracekitv1alpha1 "github.com/tracekit/tracekit/api/v1alpha1"
	"github.com/tracekit/tracekit/server/store"
	"github.com/tracekit/tracekit/server/store/storetest"
)

// Two PostgreSQL servers, the suite's on 5432 and one this test starts, each declared as a
// TraceKitDatabase: new tenants are spread over both, each tenant's role reads only its own rows on
// its own server, a placed tenant does not move, and deleting a tenant removes its rows and role
// from the server it is on and nothing anywhere else. A database holding tenants is not deleted
// until they are.
func TestDatabases_TenantsArePlacedOnSeveralServers(t *testing.T) {
	g := gomegaFor(t)
	g.SetDefaultEventuallyTimeout(2 * time.Minute) // two fresh databases to migrate, on a shared machine
	ctx := context.Background()
	ns := newNamespace(t)
	dsnA := storetest.PostgresDSN(t)
	dsnB, drop, err := storetest.NewDatabase(ctx, startPostgres(t), "tracekit_test_")
	g.Expect(err).NotTo(HaveOccurred())
	t.Cleanup(func() {
		if err := drop(); err != nil {
			t.Error(err)
		}
	})
	g.Expect(serverOf(dsnA)).NotTo(Equal(serverOf(dsnB)))
	createSecret(t, ns, "db-a", map[string]string{"url": dsnA})
	createSecret(t, ns, "db-b", map[string]string{"url": dsnB})
	// Cluster-scoped and named like the tenants, unique per run; b sorts after a, so ties go to a.
	dbA, dbB := uniqueName("a-db"), uniqueName("b-db")
	dsnOf := map[string]string{dbA: dsnA, dbB: dsnB}
	for name, secret := range map[string]string{dbA: "db-a", dbB: "db-b"} {
		db := &tracekitv1alpha1.TraceKitDatabase{ObjectMeta: metav1.ObjectMeta{Name: name},
			Spec: tracekitv1alpha1.TraceKitDatabaseSpec{AdminSecretRef: tracekitv1alpha1.NamespacedSecretKeyRef{Namespace: ns, Name: secret}}}
		g.Expect(k8s.Create(ctx, db)).To(Succeed())
		eventuallyDatabase(g, name, metav1.ConditionTrue, "Migrated", 0)
	}

	// Four tenants name no database: two land on each server (fewest tenants first).
	var tenants []string
	for range 4 {
		name := uniqueName("placed")
		tenant := newTenant(ns, name, "")
		tenant.Spec.Database = tracekitv1alpha1.TenantDatabase{}
		g.Expect(k8s.Create(ctx, tenant)).To(Succeed())
		tenants = append(tenants, name)
	}
	on := map[string]string{} // tenant → database
	for _, name := range tenants {
		tk := eventuallyReady(g, ns, name)
		g.Expect(tk.Status.Database).To(BeElementOf(dbA, dbB))
		g.Expect(tk.Annotations).To(HaveKeyWithValue(databaseAnnotation, tk.Status.Database))
		on[name] = tk.Status.Database
	}
	byDB := map[string][]string{}
	for _, name := range tenants {
		byDB[on[name]] = append(byDB[on[name]], name)
	}
	g.Expect(byDB[dbA]).To(HaveLen(2), "placement: %v", on)
	g.Expect(byDB[dbB]).To(HaveLen(2), "placement: %v", on)
	eventuallyDatabase(g, dbA, metav1.ConditionTrue, "Migrated", 2)
	eventuallyDatabase(g, dbB, metav1.ConditionTrue, "Migrated", 2)

	// Each tenant's server connects as its own role, to the server it was placed on, writes there,
	// and reads only its own rows.
	roles := map[string]string{}
	for _, name := range tenants {
		s := &corev1.Secret{}
		getObject(g, ns, "tracekit-"+name+"-db", s)
		tenantURL := string(s.Data["url"])
		roles[name] = string(s.Data["role"])
		g.Expect(serverOf(tenantURL)).To(Equal(serverOf(dsnOf[on[name]])), "tenant %s's URL points at its database's server", name)
		writeSpanAs(t, tenantURL, name)
		g.Expect(tenantIDsVisibleTo(t, tenantURL)).To(Equal([]string{name}), "the role of %s reads only its own rows", name)
		other := dsnA
		if on[name] == dbA {
			other = dsnB
		}
		g.Expect(roleExists(t, dsnOf[on[name]], roles[name])).To(BeTrue())
		g.Expect(roleExists(t, other, roles[name])).To(BeFalse(), "no role of %s on the other server", name)
	}
	g.Expect(spanCounts(t, dsnA)).To(Equal(map[string]int{byDB[dbA][0]: 1, byDB[dbA][1]: 1}))
	g.Expect(spanCounts(t, dsnB)).To(Equal(map[string]int{byDB[dbB][0]: 1, byDB[dbB][1]: 1}))

	// Placement is sticky: pinning a placed tenant to the other database is refused, nothing moves.
	mover := byDB[dbA][0]
	update(g, ns, mover, func(tk *tracekitv1alpha1.TraceKitTenant) { tk.Spec.Database.Name = dbB })
	tk := eventuallyCondition(g, ns, mover, tracekitv1alpha1.ConditionDatabaseReady, metav1.ConditionFalse, "DatabaseMoveRefused")
	g.Expect(meta.FindStatusCondition(tk.Status.Conditions, tracekitv1alpha1.ConditionDatabaseReady).Message).To(
		ContainSubstring("placed on TraceKitDatabase %s; moving it to %s would leave its data behind", dbA, dbB))
	g.Expect(tk.Status.Database).To(Equal(dbA))
	g.Expect(roleExists(t, dsnB, roles[mover])).To(BeFalse())
	update(g, ns, mover, func(tk *tracekitv1alpha1.TraceKitTenant) { tk.Spec.Database.Name = dbA })
	eventuallyReady(g, ns, mover)

	// A pinned tenant goes where it is told, even when the other database has fewer tenants.
	pinned := uniqueName("pinned")
	tenant := newTenant(ns, pinned, "")
	tenant.Spec.Database = tracekitv1alpha1.TenantDatabase{Name: dbA}
	g.Expect(k8s.Create(ctx, tenant)).To(Succeed())
	g.Expect(eventuallyReady(g, ns, pinned).Status.Database).To(Equal(dbA))
	eventuallyDatabase(g, dbA, metav1.ConditionTrue, "Migrated", 3)

	// Deleting a tenant on B removes its role and rows from B; B's other tenant and all of A stay.
	gone, stays := byDB[dbB][0], byDB[dbB][1]
	deleteTenant(g, ns, gone)
	g.Expect(roleExists(t, dsnB, roles[gone])).To(BeFalse())
	g.Expect(spanCounts(t, dsnB)).To(Equal(map[string]int{stays: 1}))
	g.Expect(tenantRows(t, dsnB)).To(Equal([]string{stays}))
	g.Expect(roleExists(t, dsnB, roles[stays])).To(BeTrue())
	g.Expect(spanCounts(t, dsnA)).To(Equal(map[string]int{byDB[dbA][0]: 1, byDB[dbA][1]: 1}))
	for _, name := range byDB[dbA] {
		g.Expect(roleExists(t, dsnA, roles[name])).To(BeTrue())
	}
	eventuallyDatabase(g, dbB, metav1.ConditionTrue, "Migrated", 1)

	// A database that still holds a tenant is not deleted: it says which tenant holds it.
	g.Expect(k8s.Delete(ctx, &tracekitv1alpha1.TraceKitDatabase{ObjectMeta: metav1.ObjectMeta{Name: dbB}})).To(Succeed())
	held := eventuallyDatabase(g, dbB, metav1.ConditionFalse, "DeletionBlocked", 1)
	g.Expect(meta.FindStatusCondition(held.Status.Conditions, tracekitv1alpha1.ConditionReady).Message).To(
		ContainSubstring("1 tenant(s) are still placed on this database (%s/%s)", ns, stays))
	// Nor is a new tenant placed on it meanwhile.
	late := uniqueName("late")
	tenant = newTenant(ns, late, "")
	tenant.Spec.Database = tracekitv1alpha1.TenantDatabase{}
	g.Expect(k8s.Create(ctx, tenant)).To(Succeed())
	g.Expect(eventuallyReady(g, ns, late).Status.Database).To(Equal(dbA))
	deleteTenant(g, ns, stays)
	g.Eventually(func() bool {
		return apierrors.IsNotFound(k8s.Get(ctx, types.NamespacedName{Name: dbB}, &tracekitv1alpha1.TraceKitDatabase{}))
	}).Should(BeTrue(), "the database goes once its last tenant is gone")
	g.Expect(tenantRows(t, dsnB)).To(BeEmpty())

	for _, name := range append(byDB[dbA], pinned, late) {
		deleteTenant(g, ns, name)
	}
	g.Expect(tenantRows(t, dsnA)).To(BeEmpty())
	g.Expect(k8s.Delete(ctx, &tracekitv1alpha1.TraceKitDatabase{ObjectMeta: metav1.ObjectMeta{Name: dbA}})).To(Succeed())
	g.Eventually(func() bool {
		return apierrors.IsNotFound(k8s.Get(ctx, types.NamespacedName{Name: dbA}, &tracekitv1alpha1.TraceKitDatabase{}))
	}).Should(BeTrue(), "an empty database is deleted at once")
}

// A tenant that names no database waits, saying why, until a database can take it.
func TestDatabases_FullOrMissingDatabasesSayWhy(t *testing.T) {
	g := gomegaFor(t)
	ctx := context.Background()
	ns := newNamespace(t)
	createSecret(t, ns, "db", map[string]string{"url": storetest.PostgresDSN(t)})

	pinned := uniqueName("pinned")
	tenant := newTenant(ns, pinned, "")
	tenant.Spec.Database = tracekitv1alpha1.TenantDatabase{Name: uniqueName("nowhere")}
	g.Expect(k8s.Create(ctx, tenant)).To(Succeed())
	tk := eventuallyCondition(g, ns, pinned, tracekitv1alpha1.ConditionDatabaseReady, metav1.ConditionFalse, "DatabaseNotFound")
	g.Expect(meta.FindStatusCondition(tk.Status.Conditions, tracekitv1alpha1.ConditionDatabaseReady).Message).To(
		ContainSubstring("spec.database.name: there is no TraceKitDatabase %s", tenant.Spec.Database.Name))

	// A full database takes no more tenants; raising maxTenants places the waiting one.
	full := uniqueName("full")
	zero := int32(0)
	g.Expect(k8s.Create(ctx, &tracekitv1alpha1.TraceKitDatabase{ObjectMeta: metav1.ObjectMeta{Name: full},
		Spec: tracekitv1alpha1.TraceKitDatabaseSpec{AdminSecretRef: tracekitv1alpha1.NamespacedSecretKeyRef{Namespace: ns, Name: "db"}, MaxTenants: &zero}})).To(Succeed())
	t.Cleanup(func() {
		_ = k8s.Delete(ctx, &tracekitv1alpha1.TraceKitDatabase{ObjectMeta: metav1.ObjectMeta{Name: full}})
	})
	eventuallyDatabase(g, full, metav1.ConditionTrue, "Migrated", 0)
	waiting := uniqueName("waiting")
	tenant = newTenant(ns, waiting, "")
	tenant.Spec.Database = tracekitv1alpha1.TenantDatabase{}
	g.Expect(k8s.Create(ctx, tenant)).To(Succeed())
	tk = eventuallyCondition(g, ns, waiting, tracekitv1alpha1.ConditionDatabaseReady, metav1.ConditionFalse, "NoDatabaseAvailable")
	g.Expect(meta.FindStatusCondition(tk.Status.Conditions, tracekitv1alpha1.ConditionDatabaseReady).Message).To(
		ContainSubstring("%s is full (0 of maxTenants 0)", full))
	g.Expect(tk.Status.Database).To(BeEmpty())

	g.Eventually(func(g Gomega) {
		db := &tracekitv1alpha1.TraceKitDatabase{}
		g.Expect(k8s.Get(ctx, types.NamespacedName{Name: full}, db)).To(Succeed())
		one := int32(1)
		db.Spec.MaxTenants = &one
		g.Expect(k8s.Update(ctx, db)).To(Succeed())
	}).Should(Succeed())
	g.Expect(eventuallyReady(g, ns, waiting).Status.Database).To(Equal(full))
	deleteTenant(g, ns, waiting)
	deleteTenant(g, ns, pinned)
}

// eventuallyDatabase waits until the database's Ready condition and tenant count are as given.
func eventuallyDatabase(g *WithT, name string, status metav1.ConditionStatus, reason string, tenants int32) *tracekitv1alpha1.TraceKitDatabase {
	var out *tracekitv1alpha1.TraceKitDatabase
	g.Eventually(func(g Gomega) {
		db := &tracekitv1alpha1.TraceKitDatabase{}
		g.Expect(k8s.Get(context.Background(), types.NamespacedName{Name: name}, db)).To(Succeed())
		c := meta.FindStatusCondition(db.Status.Conditions, tracekitv1alpha1.ConditionReady)
		g.Expect(c).NotTo(BeNil(), "TraceKitDatabase %s has no Ready condition yet", name)
		g.Expect(c.Status).To(Equal(status), "%s: %s", c.Reason, c.Message)
		g.Expect(c.Reason).To(Equal(reason), c.Message)
		g.Expect(db.Status.Tenants).To(Equal(tenants))
		out = db
	}).Should(Succeed())
	return out
}

func deleteTenant(g *WithT, ns, name string) {
	ctx := context.Background()
	g.Expect(k8s.Delete(ctx, &tracekitv1alpha1.TraceKitTenant{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}})).To(Succeed())
	g.Eventually(func() bool {
		return apierrors.IsNotFound(k8s.Get(ctx, types.NamespacedName{Namespace: ns, Name: name}, &tracekitv1alpha1.TraceKitTenant{}))
	}).Should(BeTrue(), "tenant %s is deleted once its records are gone", name)
}

// writeSpanAs stores one span of tenant through the store, connected as the tenant's own role, as
// its server would.
func writeSpanAs(t *testing.T, tenantURL, tenant string) {
	t.Helper()
	ctx := context.Background()
	db, err := store.Open(ctx, tenantURL)
	if err != nil {
		t.Fatalf("connect as tenant %s: %v", tenant, err)
	}
	defer db.Close()
	err = db.ForTenant(tenant).InsertBatch(ctx, store.Batch{Spans: []store.Span{{TraceID: fmt.Sprintf("%032x", 1), SpanID: fmt.Sprintf("%016x", 1),
		Service: "checkout", Operation: "POST /pay", IsEntry: true, StartNS: 1, DurationNS: 2}}})
	if err != nil {
		t.Fatalf("store a span as tenant %s: %v", tenant, err)
	}
}

// tenantIDsVisibleTo is every tenant id the role of dsn can read in spans and tenants.
func tenantIDsVisibleTo(t *testing.T, dsn string) []string {
	t.Helper()
	return queryStrings(t, dsn, "SELECT tenant_id FROM spans UNION SELECT id FROM tenants ORDER BY 1")
}

func tenantRows(t *testing.T, adminDSN string) []string {
	t.Helper()
	return queryStrings(t, adminDSN, "SELECT id FROM tenants ORDER BY 1")
}

func queryStrings(t *testing.T, dsn, query string) []string {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	rows, _ := conn.Query(ctx, query)
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// spanCounts is the number of spans of each tenant in the database of adminDSN.
func spanCounts(t *testing.T, adminDSN string) map[string]int {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, adminDSN)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	rows, _ := conn.Query(ctx, "SELECT tenant_id, count(*) FROM spans GROUP BY 1")
	out := map[string]int{}
	var id string
	var n int
	_, err = pgx.ForEachRow(rows, []any{&id, &n}, func() error { out[id] = n; return nil })
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// startPostgres starts a PostgreSQL server of its own, in a temporary directory, on a free loopback
// port with trust authentication, stopped and removed when the test ends, and returns its admin URL.
// It fails the test when it cannot: the binaries are PostgreSQL 15's (Debian's
// /usr/lib/postgresql/15/bin, also linked into /usr/local/bin), or $TRACEKIT_TEST_PG_BIN.
//
// initdb and postgres refuse to run as root; as root (CI containers), they run as the postgres user
// (the Debian package's), in a directory it owns.
func startPostgres(t *testing.T) string {
	t.Helper()
	bin := pgBinDir(t)
	dir, err := os.MkdirTemp("", "tracekit-pg-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	var cred *syscall.Credential
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			t.Fatalf("running as root, the second PostgreSQL must run as another user, and there is no postgres user (%v): install PostgreSQL 15 from Debian or run the tests as a non-root user", err)
		}
		uid, _ := strconv.ParseUint(u.Uid, 10, 32)
		gid, _ := strconv.ParseUint(u.Gid, 10, 32)
		cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
		if err := os.Chown(dir, int(uid), int(gid)); err != nil {
			t.Fatal(err)
		}
	}
	run := func(name string, args ...string) error {
		cmd := exec.Command(filepath.Join(bin, name), args...)
		cmd.Dir = dir
		if cred != nil {
			cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
		}
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
		}
		return nil
	}
	data := filepath.Join(dir, "data")
	if err := run("initdb", "--pgdata", data, "--username", "postgres", "--auth", "trust", "--no-sync", "--encoding", "UTF8", "--no-locale"); err != nil {
		t.Fatalf("the second PostgreSQL server: %v", err)
	}
	port := freePort(t)
	opts := fmt.Sprintf("-p %d -k %s -c listen_addresses=127.0.0.1 -c max_connections=60 -c fsync=off -c shared_buffers=16MB", port, dir)
	if err := run("pg_ctl", "--pgdata", data, "--log", filepath.Join(dir, "log"), "--wait", "--options", opts, "start"); err != nil {
		log, _ := os.ReadFile(filepath.Join(dir, "log"))
		t.Fatalf("the second PostgreSQL server: %v\n%s", err, log)
	}
	t.Cleanup(func() {
		if err := run("pg_ctl", "--pgdata", data, "--mode", "immediate", "--wait", "stop"); err != nil {
			t.Error(err)
		}
	})
	return (&url.URL{Scheme: "postgres", User: url.User("postgres"), Host: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)),
		Path: "/postgres", RawQuery: "sslmode=disable"}).String()
}

func pgBinDir(t *testing.T) string {
	t.Helper()
	dirs := []string{os.Getenv("TRACEKIT_TEST_PG_BIN"), "/usr/lib/postgresql/15/bin", "/usr/local/bin"}
	for _, d := range dirs {
		if d == "" {
			continue
		}
		if _, err := os.Stat(filepath.Join(d, "pg_ctl")); err == nil {
			return d
		}
	}
	t.Fatalf("initdb and pg_ctl of PostgreSQL 15 not found in %s: install postgresql-15 or set TRACEKIT_TEST_PG_BIN", strings.Join(slices.DeleteFunc(dirs, func(s string) bool { return s == "" }), ", "))
	return ""
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
