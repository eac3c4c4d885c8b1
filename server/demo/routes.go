package demo

import (
	"fmt"
	"math"
	"strconv"
)

// route is a page or API of the shop as the browser sees it. api runs inside the api-gateway SERVER span.
type route struct {
	method, path string
	weight       float64 // share of traffic
	signedIn     float64 // share of requests from signed-in users
	page         bool    // server-rendered: frontend renders HTML after the API answers
	url          func(g *generator) string
	api          func(t *trace, gw *span, at int64, user string) reply
}

func fixed(p string) func(*generator) string { return func(*generator) string { return p } }

func productPath(g *generator) string { return "/products/" + strconv.Itoa(g.product()) }

var routes = []route{
	{"GET", "/", 10, 0.5, true, fixed("/"), (*trace).homeAPI},
	{"GET", "/products", 18, 0.5, true, fixed("/products"), (*trace).productsAPI},
	{"GET", "/products/{id}", 24, 0.55, true, productPath, (*trace).productAPI},
	{"GET", "/search", 8, 0.5, true, fixed("/search"), (*trace).searchAPI},
	{"POST", "/cart/items", 9, 1, false, fixed("/cart/items"), (*trace).cartAddAPI},
	{"GET", "/cart", 5, 1, true, fixed("/cart"), (*trace).cartAPI},
	{"POST", "/checkout", 5, 1, false, fixed("/checkout"), (*trace).checkoutAPI},
	{"GET", "/recommendations", 9, 0.7, false, fixed("/recommendations"), (*trace).recommendationsAPI},
	{"POST", "/assistant/chat", 3, 1, false, fixed("/assistant/chat"), (*trace).assistantAPI},
	{"GET", "/account", 6, 1, true, fixed("/account"), (*trace).accountAPI},
	{"POST", "/login", 3, 0, false, fixed("/login"), (*trace).loginAPI},
}

var routeWeights = func() float64 {
	total := 0.0
	for _, r := range routes {
		total += r.weight
	}
	return total
}()

var userAgents = []string{
	"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/141.0.0.0 Safari/537.36",
	"Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.6 Safari/605.1.15",
	"Mozilla/5.0 (iPhone; CPU iPhone OS 18_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.6 Mobile/15E148 Safari/604.1",
	"Mozilla/5.0 (Linux; Android 15; Pixel 9) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/141.0.0.0 Mobile Safari/537.36",
	"Mozilla/5.0 (X11; Linux x86_64; rv:144.0) Gecko/20100101 Firefox/144.0",
}

// user is a signed-in customer; a few heavy users make up much of the traffic, as in real shops.
func (g *generator) user() string {
	return fmt.Sprintf("u_%05d", int(math.Pow(g.rng.Float64(), 2)*40000))
}

func (g *generator) product() int { return 1 + int(math.Pow(g.rng.Float64(), 1.6)*4800) }

// trace generates one request of a visitor, from the browser-facing frontend down to the databases.
func (g *generator) trace(at int64) *trace {
	t := &trace{g: g, id: g.traceID(), at: at}
	x := g.rng.Float64() * routeWeights
	r := routes[len(routes)-1]
	for _, c := range routes {
		if x < c.weight {
			r = c
			break
		}
		x -= c.weight
	}
	user := ""
	if g.chance(r.signedIn) {
		user = g.user()
	}
	path := r.url(g)
	fe := t.open(nil, g.pod(frontend, at), frontend.scopes.server, server, r.method+" "+r.path, at,
		str("http.request.method", r.method),
		str("http.route", r.path),
		str("url.path", path),
		str("url.scheme", "https"),
		str("server.address", "shop.example.com"),
		str("network.protocol.version", "2"),
		str("user_agent.original", userAgents[g.rng.IntN(len(userAgents))]))
	if user != "" {
		fe.set(str("user.id", user))
	}
	rep := t.call(fe, gateway, r.method, "/api"+r.path, "/api"+path, at+g.lognorm(1, 4), func(gw *span, at int64) reply {
		if user != "" {
			at = t.db(gw, sessionRedis, "GET", "", "GET session:?", at, g.lognorm(0.3, 1.2)).done()
			gw.set(str("enduser.id", user))
		}
		rep := r.api(t, gw, at, user)
		if ev := activityEvents[r.path]; ev != "" && rep.code < 400 {
			rep.end = t.publishActivity(gw, rep.end, ev)
		}
		rep.end += g.lognorm(0.1, 0.5)
		return rep
	})
	end, code := rep.end, rep.code
	if code >= 500 {
		fe.fail(end, fmt.Sprintf("api-gateway responded %d: %s", code, rep.err), "")
	} else if r.page && code < 400 {
		render := t.work(fe, "render "+r.path, end, g.lognorm(6, 25))
		end = render.done()
		if g.chance(0.006) {
			msg := "Cannot read properties of undefined (reading 'priceCents')"
			render.fail(end, msg, "TypeError")
			fe.fail(end, msg, "TypeError")
			code = 500
		}
	}
	fe.set(i64("http.response.status_code", int64(code)))
	fe.end(end + g.lognorm(0.4, 2))
	return t
}

// activityEvents are the routes whose requests api-gateway reports on the activity topic, by the
// event they publish.
var activityEvents = map[string]string{"/products/{id}": "product_viewed", "/cart/items": "cart_item_added"}

// publishActivity publishes an activity event from the gateway and returns when the broker acked
// it; activity-service consumes the message later and records the event. Cart additions are
// processed one at a time, in the gateway's trace; product views, far more of them, are read in
// batches, each message processed in a trace of its own linked to the span that published it.
func (t *trace) publishActivity(gw *span, at int64, event string) int64 {
	g := t.g
	pub := t.child(gw, gateway.scopes.kafka, producer, activityTopic+" publish", at,
		str("messaging.system", "kafka"),
		str("messaging.operation.type", "publish"),
		str("messaging.destination.name", activityTopic),
		str("server.address", "kafka.shop.svc"))
	end := pub.end(at + g.lognorm(0.8, 3))
	pod := g.rng.IntN(activity.pods)
	if g.sched.more.consumer.has(t.at) {
		pod = 0 // the only member left in the consumer group
	}
	open := t.open
	if event == "product_viewed" {
		open = t.openLinked
	}
	con := open(pub, g.res.get(activity, activity.version, pod), activity.scopes.kafka, consumer, activityTopic+" process",
		end+t.activityLag(),
		str("messaging.system", "kafka"),
		str("messaging.operation.type", "process"),
		str("messaging.destination.name", activityTopic),
		str("messaging.consumer.group.name", activity.name),
		str("messaging.kafka.message.key", event))
	at = t.db(con, usersDB, "INSERT", "product_views", "INSERT INTO product_views (user_id, product_id, event, viewed_at) VALUES ($1, $2, $3, $4)",
		int64(con.pb.StartTimeUnixNano)+g.lognorm(0.1, 0.4), g.lognorm(2, 7)).done()
	con.end(at + g.lognorm(0.3, 1))
	return end
}

func (t *trace) pass(r reply) reply {
	r.end += t.g.lognorm(0.1, 0.4)
	return r
}

// internalError ends a handler with a 500 caused by exception excType, recorded on the span that
// raised it and on the server span.
func (t *trace) internalError(srv, raised *span, at int64, code int, excType, msg string) reply {
	raised.fail(at, msg, excType)
	if raised != srv {
		srv.fail(at, msg, excType)
	}
	return reply{end: at + t.g.lognorm(0.3, 1.5), code: code, err: msg}
}

// --- inventory-service: reads from a replica, stock writes and checks on the primary ---

func (t *trace) homeAPI(gw *span, at int64, _ string) reply {
	return t.pass(t.call(gw, inventory, "GET", "/v1/products/featured", "/v1/products/featured", at, func(s *span, at int64) reply {
		g := t.g
		at, cached := t.cacheGet(s, "GET products:featured", at)
		if miss := g.chance(0.1); miss || !cached {
			var fail *reply
			if at, fail = t.replica(s, "products", "SELECT p.id, p.name, p.price_cents, p.image_url FROM products p WHERE p.featured ORDER BY p.popularity DESC LIMIT 12", at, 6, 20); fail != nil {
				return *fail
			}
			if cached {
				at = t.db(s, cacheRedis, "SETEX", "", "SETEX products:featured 300 ?", at, g.lognorm(0.3, 1.2)).done()
			}
		}
		return ok(at+g.lognorm(0.5, 2), 200)
	}))
}

func (t *trace) productsAPI(gw *span, at int64, _ string) reply {
	return t.pass(t.call(gw, inventory, "GET", "/v1/products", "/v1/products", at, func(s *span, at int64) reply {
		g := t.g
		at, cached := t.cacheGet(s, "GET products:list:?:?", at)
		miss := g.chance(0.4)
		if !cached {
			// The read-through fallback loads the page's products one by one from the replica.
			for range 24 {
				var fail *reply
				if at, fail = t.replica(s, "products", productQuery, at, 2, 8); fail != nil {
					return *fail
				}
			}
		} else if miss {
			var fail *reply
			if at, fail = t.replica(s, "products", "SELECT p.id, p.name, p.price_cents, s.available FROM products p JOIN stock s ON s.product_id = p.id WHERE p.category_id = $1 ORDER BY p.popularity DESC LIMIT $2 OFFSET $3", at, 9, 40); fail != nil {
				return *fail
			}
			at = t.db(s, cacheRedis, "SETEX", "", "SETEX products:list:?:? 120 ?", at, g.lognorm(0.3, 1.2)).done()
		}
		return ok(at+g.lognorm(1, 4), 200)
	}))
}

func (t *trace) productAPI(gw *span, at int64, _ string) reply {
	g := t.g
	id := strconv.Itoa(g.product())
	return t.pass(t.call(gw, inventory, "GET", "/v1/products/{id}", "/v1/products/"+id, at, func(s *span, at int64) reply {
		at, cached := t.cacheGet(s, "GET product:?", at)
		var fail *reply
		if miss := g.chance(0.25); miss || !cached {
			if at, fail = t.replica(s, "products", productQuery, at, 2, 8); fail != nil {
				return *fail
			}
			if g.chance(0.06) { // a stale link to a product that was removed
				return ok(at+g.lognorm(0.5, 2), 404)
			}
			if cached {
				at = t.db(s, cacheRedis, "SETEX", "", "SETEX product:? 600 ?", at, g.lognorm(0.3, 1.2)).done()
			}
		}
		if at, fail = t.replica(s, "stock", "SELECT available, reserved FROM stock WHERE product_id = $1", at, 1.5, 6); fail != nil {
			return *fail
		}
		return ok(at+g.lognorm(0.5, 2), 200)
	}))
}

// productQuery reads one product on the inventory replica.
const productQuery = "SELECT id, sku, name, description, price_cents, category_id FROM products WHERE id = $1"

// replica is a read on the inventory replica; a few are cancelled when they conflict with replication.
func (t *trace) replica(s *span, table, stmt string, at int64, median, p95 float64) (int64, *reply) {
	g := t.g
	if g.chance(0.02) {
		d := t.db(s, inventoryReplica, "SELECT", table, stmt, at, g.lognorm(median*3, p95*3))
		r := t.internalError(s, d, d.done(), 500, "org.postgresql.util.PSQLException", "ERROR: canceling statement due to conflict with recovery")
		return r.end, &r
	}
	return t.db(s, inventoryReplica, "SELECT", table, stmt, at, g.lognorm(median, p95)).done(), nil
}

// primary is a call on the inventory primary database; during the pool incident most calls wait for
// the 1 s pool timeout and fail.
func (t *trace) primary(s *span, op, table, stmt string, at int64, median, p95 float64) (int64, *reply) {
	g := t.g
	if g.sched.inventory.has(t.at) {
		if g.chance(0.75) {
			d := t.db(s, inventoryPrimary, op, table, stmt, at, g.lognorm(1000, 1012))
			msg := "HikariPool-1 - Connection is not available, request timed out after 1000ms (total=20, active=20, idle=0, waiting=" + strconv.Itoa(30+g.rng.IntN(40)) + ")"
			r := t.internalError(s, d, d.done(), 503, poolExhausted, msg)
			return r.end, &r
		}
		median, p95 = median+250, p95+900 // waited in the pool queue
	}
	return t.db(s, inventoryPrimary, op, table, stmt, at, g.lognorm(median, p95)).done(), nil
}

func (t *trace) reserve(checkoutSpan *span, at int64, items int) reply {
	return t.call(checkoutSpan, inventory, "POST", "/v1/reservations", "/v1/reservations", at, func(s *span, at int64) reply {
		g := t.g
		for range items {
			var fail *reply
			at, fail = t.primary(s, "UPDATE", "stock", "UPDATE stock SET reserved = reserved + $2 WHERE product_id = $1 AND available - reserved >= $2", at, 2.5, 9)
			if fail != nil {
				return *fail
			}
			if g.chance(0.003) {
				d := t.db(s, inventoryPrimary, "UPDATE", "stock", "UPDATE stock SET reserved = reserved + $2 WHERE product_id = $1 AND available - reserved >= $2", at, g.lognorm(40, 200))
				return t.internalError(s, d, d.done(), 500, "org.postgresql.util.PSQLException", "ERROR: deadlock detected")
			}
		}
		if g.chance(0.01) {
			return ok(at+g.lognorm(0.5, 2), 409)
		}
		at = t.primaryInsertReservation(s, at)
		return ok(at+g.lognorm(0.5, 2), 201)
	})
}

func (t *trace) primaryInsertReservation(s *span, at int64) int64 {
	return t.db(s, inventoryPrimary, "INSERT", "reservations", "INSERT INTO reservations (id, order_ref, expires_at) VALUES ($1, $2, now() + interval '15 minutes')", at, t.g.lognorm(1.5, 5)).done()
}

func (t *trace) release(checkoutSpan *span, at int64) reply {
	return t.call(checkoutSpan, inventory, "DELETE", "/v1/reservations/{id}", "/v1/reservations/"+strconv.Itoa(t.g.rng.IntN(1e6)), at, func(s *span, at int64) reply {
		at = t.db(s, inventoryPrimary, "UPDATE", "stock", "UPDATE stock SET reserved = reserved - r.quantity FROM reservation_items r WHERE r.reservation_id = $1 AND stock.product_id = r.product_id", at, t.g.lognorm(3, 10)).done()
		return ok(at+t.g.lognorm(0.5, 2), 204)
	})
}

func (t *trace) stockCheck(checkoutSpan *span, at int64) reply {
	id := strconv.Itoa(t.g.product())
	return t.call(checkoutSpan, inventory, "GET", "/v1/stock/{id}", "/v1/stock/"+id, at, func(s *span, at int64) reply {
		median, p95 := t.stockCheckTime()
		at, fail := t.primary(s, "SELECT", "stock", stockCheckQuery, at, median, p95)
		if fail != nil {
			return *fail
		}
		if t.g.chance(0.02) {
			return ok(at+t.g.lognorm(0.5, 2), 409)
		}
		return ok(at+t.g.lognorm(0.5, 2), 200)
	})
}

// --- checkout-service ---

// upstreamFailed ends a checkout-service handler whose dependency answered with a 5xx.
func (t *trace) upstreamFailed(s *span, at int64, code int, dep string, r reply, excType string) reply {
	msg := fmt.Sprintf("%s responded %d: %s", dep, r.code, r.err)
	s.fail(at, msg, excType)
	return reply{end: at + t.g.lognorm(0.5, 2), code: code, err: msg}
}

func (t *trace) cartAddAPI(gw *span, at int64, user string) reply {
	return t.pass(t.call(gw, checkout, "POST", "/v1/cart/items", "/v1/cart/items", at, func(s *span, at int64) reply {
		g := t.g
		st := t.stockCheck(s, at)
		at = st.end
		switch {
		case st.code >= 500:
			return t.upstreamFailed(s, at, 503, "inventory-service", st, "com.shop.checkout.InventoryUnavailableException")
		case st.code == 409:
			return ok(at+g.lognorm(0.5, 2), 409)
		}
		at = t.db(s, cartRedis, "HSET", "", "HSET cart:? ? ?", at, g.lognorm(0.4, 1.5)).done()
		at = t.db(s, cartRedis, "EXPIRE", "", "EXPIRE cart:? 604800", at, g.lognorm(0.3, 1)).done()
		return ok(at+g.lognorm(0.5, 2), 201)
	}))
}

func (t *trace) cartAPI(gw *span, at int64, user string) reply {
	return t.pass(t.call(gw, checkout, "GET", "/v1/cart", "/v1/cart", at, func(s *span, at int64) reply {
		g := t.g
		at = t.db(s, cartRedis, "HGETALL", "", "HGETALL cart:?", at, g.lognorm(0.4, 1.5)).done()
		at = t.work(s, "cart.compute_totals", at, g.lognorm(1.2, 4)).done()
		return ok(at+g.lognorm(0.5, 2), 200)
	}))
}

func (t *trace) checkoutAPI(gw *span, at int64, user string) reply {
	return t.pass(t.call(gw, checkout, "POST", "/v1/checkout", "/v1/checkout", at, func(s *span, at int64) reply {
		g := t.g
		items := 1 + g.rng.IntN(3)
		s.set(i64("checkout.items", int64(items)))
		at = t.db(s, cartRedis, "HGETALL", "", "HGETALL cart:?", at, g.lognorm(0.4, 1.5)).done()
		v := t.work(s, "cart.validate", at, g.lognorm(1.5, 5))
		at = v.done()
		if g.chance(0.003) {
			return t.internalError(s, v, at, 500, "java.lang.NullPointerException", `Cannot invoke "com.shop.checkout.Money.cents()" because "line.unitPrice" is null`)
		}

		inv := t.reserve(s, at, items)
		at = inv.end
		switch {
		case inv.code >= 500:
			return t.upstreamFailed(s, at, 503, "inventory-service", inv, "com.shop.checkout.InventoryUnavailableException")
		case inv.code == 409:
			return ok(at+g.lognorm(0.5, 2), 409)
		}

		pay := t.call(s, payment, "POST", "/v1/charges", "/v1/charges", at, t.charge)
		at = pay.end
		if pay.code >= 400 {
			at = t.release(s, at).end
			if pay.code >= 500 {
				return t.upstreamFailed(s, at, 502, "payment-service", pay, "com.shop.checkout.PaymentFailedException")
			}
			return ok(at+g.lognorm(0.5, 2), pay.code)
		}

		at = t.db(s, checkoutDB, "INSERT", "orders", "INSERT INTO orders (id, customer_id, status, total_cents, currency, created_at) VALUES ($1, $2, 'paid', $3, $4, now())", at, g.lognorm(2.5, 9)).done()
		at = t.db(s, checkoutDB, "INSERT", "order_items", "INSERT INTO order_items (order_id, product_id, quantity, unit_price_cents) VALUES ($1, $2, $3, $4)", at, g.lognorm(2, 7)).done()
		pub := t.child(s, checkout.scopes.kafka, producer, "orders publish", at,
			str("messaging.system", "kafka"),
			str("messaging.operation.type", "publish"),
			str("messaging.destination.name", "orders"),
			str("server.address", "kafka.shop.svc"))
		at = pub.end(at + g.lognorm(1.5, 6))
		at = t.db(s, cartRedis, "DEL", "", "DEL cart:?", at, g.lognorm(0.3, 1)).done()
		return ok(at+g.lognorm(0.5, 2), 201)
	}))
}

func (t *trace) ordersCall(gw *span, at int64) reply {
	return t.call(gw, checkout, "GET", "/v1/orders", "/v1/orders", at, func(s *span, at int64) reply {
		at = t.db(s, checkoutDB, "SELECT", "orders", "SELECT id, status, total_cents, created_at FROM orders WHERE customer_id = $1 ORDER BY created_at DESC LIMIT 10", at, t.g.lognorm(3, 12)).done()
		return ok(at+t.g.lognorm(0.5, 2), 200)
	})
}

// --- payment-service ---

func (t *trace) charge(s *span, at int64) reply {
	g := t.g
	// The recent-payments lookup of the duplicate-charge check; 2.4.0 lost its index.
	q := g.lognorm(3, 9)
	if g.sched.payment.has(t.at) {
		q = g.lognorm(1800, 3200)
	}
	at = t.db(s, paymentsDB, "SELECT", "payments", slowPaymentsQuery, at, q).done()
	at = t.work(s, "fraud.score", at, g.lognorm(6, 18), i64("fraud.rules_evaluated", 42)).done()

	code, dur := 200, g.lognorm(220, 520)
	switch x := g.rng.Float64(); {
	case x < 0.02:
		code = 402
	case x < 0.032:
		code, dur = 504, 5e9+g.lognorm(2, 10)
	}
	psp := t.child(s, payment.scopes.client, client, "POST", at,
		str("http.request.method", "POST"),
		str("server.address", "api.stripe.com"),
		i64("server.port", 443),
		str("url.full", "https://api.stripe.com/v1/payment_intents"),
		str("peer.service", "stripe"))
	at = psp.end(at + dur)
	switch code {
	case 504:
		psp.set(str("error.type", "timeout"))
		return t.internalError(s, psp, at, 502, "context.DeadlineExceeded", "stripe: POST /v1/payment_intents: context deadline exceeded (Client.Timeout exceeded while awaiting headers)")
	case 402:
		psp.set(i64("http.response.status_code", 402), str("error.type", "402"))
		psp.fail(at, "", "")
		at = t.db(s, paymentsDB, "INSERT", "payments", "INSERT INTO payments (id, customer_id, order_id, amount_cents, currency, status, provider_ref, created_at) VALUES ($1, $2, $3, $4, $5, 'declined', $6, now())", at, g.lognorm(2, 6)).done()
		return ok(at+g.lognorm(0.5, 2), 402)
	}
	psp.set(i64("http.response.status_code", 200))
	at = t.db(s, paymentsDB, "INSERT", "payments", "INSERT INTO payments (id, customer_id, order_id, amount_cents, currency, status, provider_ref, created_at) VALUES ($1, $2, $3, $4, $5, 'captured', $6, now())", at, g.lognorm(2, 6)).done()
	return ok(at+g.lognorm(0.5, 2), 201)
}

// --- user-service ---

// userQuery is a user-service database call; a few hit the statement timeout.
func (t *trace) userQuery(s *span, table, stmt string, at int64, median, p95 float64) (int64, *reply) {
	g := t.g
	if g.chance(0.01) {
		d := t.db(s, usersDB, "SELECT", table, stmt, at, g.lognorm(2000, 2010))
		r := t.internalError(s, d, d.done(), 500, "asyncpg.exceptions.QueryCanceledError", "canceling statement due to statement timeout")
		return r.end, &r
	}
	return t.db(s, usersDB, "SELECT", table, stmt, at, g.lognorm(median, p95)).done(), nil
}

func (t *trace) profile(from *span, at int64, user string) reply {
	return t.call(from, users, "GET", "/v1/users/{id}", "/v1/users/"+user, at, func(s *span, at int64) reply {
		median, p95 := t.profileQueryTime()
		at, fail := t.userQuery(s, "users", profileQuery, at, median, p95)
		if fail != nil {
			return *fail
		}
		return ok(at+t.g.lognorm(0.8, 3), 200)
	})
}

func (t *trace) history(from *span, at int64, user string) reply {
	return t.call(from, users, "GET", "/v1/users/{id}/history", "/v1/users/"+user+"/history", at, func(s *span, at int64) reply {
		at, fail := t.userQuery(s, "product_views", "SELECT product_id, viewed_at FROM product_views WHERE user_id = $1 ORDER BY viewed_at DESC LIMIT 50", at, 4, 15)
		if fail != nil {
			return *fail
		}
		return ok(at+t.g.lognorm(0.8, 3), 200)
	})
}

func (t *trace) accountAPI(gw *span, at int64, user string) reply {
	// The gateway fetches profile and orders in parallel.
	p := t.profile(gw, at, user)
	o := t.ordersCall(gw, at)
	r := p
	if o.end > r.end {
		r.end = o.end
	}
	if o.code > r.code {
		r.code, r.err = o.code, o.err
	}
	return t.pass(r)
}

func (t *trace) loginAPI(gw *span, at int64, _ string) reply {
	return t.pass(t.call(gw, users, "POST", "/v1/sessions", "/v1/sessions", at, func(s *span, at int64) reply {
		g := t.g
		at, fail := t.userQuery(s, "users", "SELECT id, password_hash, status FROM users WHERE email = $1", at, 1.5, 6)
		if fail != nil {
			return *fail
		}
		at = t.work(s, "bcrypt.checkpw", at, g.lognorm(55, 80)).done()
		if g.chance(0.07) {
			return ok(at+g.lognorm(0.5, 2), 401)
		}
		at = t.db(s, sessionRedis, "SETEX", "", "SETEX session:? 86400 ?", at, g.lognorm(0.3, 1.2)).done()
		return ok(at+g.lognorm(0.5, 2), 201)
	}))
}

// --- search-service ---

func (t *trace) searchAPI(gw *span, at int64, _ string) reply {
	return t.pass(t.call(gw, search, "GET", "/v1/search", "/v1/search", at, func(s *span, at int64) reply {
		g := t.g
		at, cached := t.cacheGet(s, "GET search:?", at)
		if hit := g.chance(0.35); hit && cached {
			return ok(at+g.lognorm(0.5, 2), 200)
		}
		stmt := "SELECT id, name, ts_rank(search_vector, query) AS rank FROM products, plainto_tsquery('english', $1) query WHERE search_vector @@ query ORDER BY rank DESC LIMIT 24"
		if g.chance(0.02) {
			d := t.db(s, catalogDB, "SELECT", "products", stmt, at, g.lognorm(3000, 3010))
			r := t.internalError(s, d, d.done(), 504, "*pgconn.PgError", "ERROR: canceling statement due to statement timeout (SQLSTATE 57014)")
			return r
		}
		at = t.db(s, catalogDB, "SELECT", "products", stmt, at, g.lognorm(25, 120)).done()
		at = t.work(s, "search.rerank", at, t.rerankTime()).done()
		if cached {
			at = t.db(s, cacheRedis, "SETEX", "", "SETEX search:? 300 ?", at, g.lognorm(0.3, 1.2)).done()
		}
		return ok(at+g.lognorm(0.5, 2), 200)
	}))
}

// --- recommendation-service: calls OpenAI directly ---

func (t *trace) recommendationsAPI(gw *span, at int64, user string) reply {
	return t.pass(t.call(gw, recommendation, "GET", "/v1/recommendations", "/v1/recommendations", at, func(s *span, at int64) reply {
		g := t.g
		if user != "" {
			at = t.recommendationHistory(s, at, user) // without history the recommendations are just less personal
		}
		at, cached := t.cacheGet(s, "GET recs:?", at)
		if hit := g.chance(0.25); hit && cached {
			return ok(at+g.lognorm(0.5, 2), 200)
		}
		if g.chance(0.35) {
			at, _ = t.genai(s, llmCall{m: embedSmall, in: g.tokens(120, 400), failRate: 0.002, legacyOnly: true}, at, false)
		}
		at = t.db(s, catalogDB, "SELECT", "products", "SELECT id, name, category_id FROM products ORDER BY embedding <=> $1 LIMIT $2", at, g.lognorm(12, 40)).done()

		c := llmCall{m: gpt4oMini, in: g.tokens(1400, 2600), out: g.tokens(180, 350), temperature: 0.3, maxTokens: 512,
			failRate: 0.02, legacyToo: true}
		if g.sched.llm.has(t.at) {
			c.m, c.in, c.out, c.maxTokens = gpt4o, g.tokens(2900, 5200), g.tokens(260, 480), 1024
		}
		// OpenAI caches prompt prefixes from 1024 tokens on.
		if c.in > 1200 && g.chance(0.4) {
			c.cached = 1024 + 128*int64(g.rng.IntN(int(c.in-1024)/128+1))
		}
		at, failed := t.genai(s, c, at, false)
		if failed {
			at = t.work(s, "recommendations.fallback_popular", at, g.lognorm(2, 6)).done()
			return ok(at+g.lognorm(0.5, 2), 200)
		}
		at = t.work(s, "recommendations.parse", at, g.lognorm(1, 3)).done()
		if cached {
			at = t.db(s, cacheRedis, "SETEX", "", "SETEX recs:? 900 ?", at, g.lognorm(0.3, 1.2)).done()
		}
		return ok(at+g.lognorm(0.5, 2), 200)
	}))
}

// --- support-assistant: every model call goes through the llm-gateway ---

func (t *trace) assistantAPI(gw *span, at int64, user string) reply {
	return t.pass(t.call(gw, assistant, "POST", "/v1/chat", "/v1/chat", at, func(s *span, at int64) reply {
		g := t.g
		at = t.profile(s, at, user).end
		at = t.db(s, assistantDB, "SELECT", "messages", "SELECT role, content, created_at FROM messages WHERE conversation_id = $1 ORDER BY created_at", at, g.lognorm(2, 8)).done()

		at, _ = t.genai(s, llmCall{m: llama, in: g.tokens(350, 600), out: g.tokens(8, 20), temperature: 0, maxTokens: 16, failRate: 0.003}, at, true)
		at, _ = t.genai(s, llmCall{m: embedSmall, in: g.tokens(60, 200), failRate: 0.002}, at, true)
		at = t.db(s, assistantDB, "SELECT", "kb_articles", "SELECT id, title, body FROM kb_articles ORDER BY embedding <=> $1 LIMIT 5", at, g.lognorm(18, 60)).done()

		answer := llmCall{m: sonnet, in: g.tokens(3200, 6500), out: g.tokens(280, 650), temperature: 0.2, maxTokens: 1024, failRate: 0.012}
		if g.chance(0.25) { // an A/B test of a cheaper model
			answer.m = gemini
		} else if g.chance(0.6) {
			answer.cached = min(answer.in, 2048) // system prompt and tool definitions are cached
		}
		var failed bool
		at, failed = t.genai(s, answer, at, true)
		if failed { // one retry after a short backoff
			at, failed = t.genai(s, answer, at+g.lognorm(500, 900), true)
			if failed {
				msg := "model " + answer.m.name + " unavailable after retry"
				s.fail(at, msg, "support_assistant.LLMUnavailableError")
				return reply{end: at + g.lognorm(0.5, 2), code: 503, err: msg}
			}
		}
		if g.chance(0.25) { // long conversations are summarised for the next turn
			at, _ = t.genai(s, llmCall{m: haiku, in: g.tokens(2500, 5000), out: g.tokens(120, 250), temperature: 0, maxTokens: 300, failRate: 0.005}, at, true)
		}
		at = t.db(s, assistantDB, "INSERT", "messages", "INSERT INTO messages (conversation_id, role, content, created_at) VALUES ($1, $2, $3, now())", at, g.lognorm(2, 7)).done()
		return ok(at+g.lognorm(0.5, 2), 200)
	}))
}
