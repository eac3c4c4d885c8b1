package auth

import (
	"errors"
	"net/http"

	"github.com/gin-gonic/gin"
)

// Require is gin middleware that authenticates the request, checks scope, and puts the Principal in
// the request context. Failures answer 401/403 with a JSON body that says what to do.
func Require(a Authenticator, scope string) gin.HandlerFunc {
	return func(c *gin.Context) {
		p, err := a.Authenticate(c.Request)
		switch {
		case err == nil:
		case errors.Is(err, ErrNoCredentials), errors.Is(err, ErrInvalidCredentials):
			c.Header("WWW-Authenticate", `Bearer realm="tracekit"`)
			c.AbortWithStatusJSON(http.StatusUnauthorized, gin.H{"error": err.Error()})
			return
		default:
			c.Header("Retry-After", "5")
			c.AbortWithStatusJSON(http.StatusServiceUnavailable, gin.H{"error": err.Error()})
			return
		}
		if scope != "" && !p.HasScope(scope) {
			c.AbortWithStatusJSON(http.StatusForbidden, gin.H{"error": "this API key lacks the '" + scope + "' scope; create a key with it: tracekit apikey create --scopes " + scope})
			return
		}
		c.Request = c.Request.WithContext(WithPrincipal(c.Request.Context(), p))
		c.Next()
	}
}

// RequireTool follows Require on a REST route that reads what the MCP tool reads: a caller whose
// sign-in did not grant the tool's group is refused there too, so consent means the same on every
// route.
func RequireTool(tool string) gin.HandlerFunc {
	return func(c *gin.Context) {
		p, _ := FromContext(c.Request.Context())
		if msg := p.ToolRefusal(tool); msg != "" {
			c.Header("WWW-Authenticate", `Bearer error="insufficient_scope", scope="`+toolScope(tool)+`"`)
			c.AbortWithStatusJSON(http.StatusForbidden, gin.H{"error": msg})
		}
	}
}

// toolScope is the scope that grants tool.
func toolScope(tool string) string {
	g, _ := toolGroupOf(tool)
	return ToolGroupClaim(g.ID)
}
