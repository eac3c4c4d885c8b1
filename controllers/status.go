package controllers

import (
	"fmt"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	tracekitv1alpha1 "github.com/tracekit/tracekit/api/v1alpha1"
)

// status collects what one reconcile finds (the conditions, on the tenant it reconciles) and does
// (the owned objects it wrote, by action).
type status struct {
	t       *tracekitv1alpha1.TraceKitTenant
	changes map[string][]string
	// refusal is why one step could not do its part while the others went on; Ready reports it.
	refusal *metav1.Condition
}

func newStatus(t *tracekitv1alpha1.TraceKitTenant) *status {
	return &status{t: t, changes: map[string][]string{}}
}

// changed records that action (Created, Updated, Deleted) was done to an owned object.
func (s *status) changed(action, kind, name string) {
	s.changes[action] = append(s.changes[action], kind+" "+name)
}

// set records a condition. meta.SetStatusCondition keeps lastTransitionTime unless the status flips,
// so setting the same condition again changes nothing.
func (s *status) set(condition string, ok bool, reason, format string, args ...any) {
	setCondition(&s.t.Status.Conditions, s.t.Generation, condition, ok, reason, format, args...)
}

// blocked marks the tenant not Ready for a reason that stops every step.
func (s *status) blocked(reason, format string, args ...any) {
	s.t.Status.MCPURL = ""
	s.set(tracekitv1alpha1.ConditionReady, false, reason, format, args...)
}

// refuse marks the tenant not Ready for a reason that stops one step only; the first one stands.
func (s *status) refuse(reason, format string, args ...any) {
	if s.refusal == nil {
		s.refusal = &metav1.Condition{Reason: reason, Message: fmt.Sprintf(format, args...)}
	}
}

// summarize derives Ready from a refusal, else from the other conditions: the first one that is
// not true says why.
func (s *status) summarize() {
	if s.t.Spec.Suspend {
		s.set(tracekitv1alpha1.ConditionReady, false, "Suspended",
			"spec.suspend is true: the MCP server runs no pods; set it to false to resume")
		return
	}
	if s.refusal != nil {
		s.set(tracekitv1alpha1.ConditionReady, false, s.refusal.Reason, "%s", s.refusal.Message)
		return
	}
	for _, c := range []string{tracekitv1alpha1.ConditionDatabaseReady, tracekitv1alpha1.ConditionAuthClientReady, tracekitv1alpha1.ConditionAvailable} {
		cond := meta.FindStatusCondition(s.t.Status.Conditions, c)
		if cond == nil {
			s.set(tracekitv1alpha1.ConditionReady, false, "Reconciling", "waiting for %s", c)
			return
		}
		if cond.Status != metav1.ConditionTrue {
			s.set(tracekitv1alpha1.ConditionReady, false, cond.Reason, "%s: %s", c, cond.Message)
			return
		}
	}
	s.set(tracekitv1alpha1.ConditionReady, true, "Ready", "the MCP server answers at %s", s.t.Status.MCPURL)
}
