//! The route table: every (method, path pattern) the server answers, and what each runs. It is the one list
//! of routes: requests are matched against it, the 405 answers (and their `Allow` header) come from it, and
//! the OpenAPI drift test (`tests/api/openapi.rs`) compares it with `openapi.yaml` both ways.
//!
//! Patterns use OpenAPI's path templating: a `{name}` segment matches any one non-empty segment.

use hyper::Method;

/// What a route runs; `super::dispatch` maps each to its handler.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    Healthz,
    Readyz,
    Metrics,
    OpenApi,
    Ping,
    Post,
    DirectPost,
    SellerBalance,
    SellerReturns,
    SellerStatement,
    BuyerBalance,
    BuyerLeads,
    BuyerReturnPolicy,
    BuyerReturns,
    BuyerStatus,
    BuyerPause,
    BuyerResume,
    BuyerStatement,
    FileReturn,
    /// The sign-in form and sign-out of the web pages (API.md section 10): answered by `crate::web`, which
    /// takes these requests before the table; listed here so that the table, the 405s and the document agree.
    Page,
    /// The operator API: every one needs the admin token.
    Operator(Operator),
}

/// The operator API's routes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operator {
    Buyers,
    Buyer,
    PauseBuyer,
    ResumeBuyer,
    Deposit,
    BuyerStatement,
    Returns,
    ApproveReturn,
    RejectReturn,
    PingAudit,
    DeliveryRecord,
    Accounts,
    Transactions,
    SellerStatement,
    Payout,
    Report,
    Config,
    Cluster,
    Reload,
}

/// One route: a method, a path pattern and what it runs.
#[derive(Debug)]
pub struct Route {
    pub method: Method,
    pub pattern: &'static str,
    pub endpoint: Endpoint,
}

const fn get(pattern: &'static str, endpoint: Endpoint) -> Route {
    Route { method: Method::GET, pattern, endpoint }
}

const fn post(pattern: &'static str, endpoint: Endpoint) -> Route {
    Route { method: Method::POST, pattern, endpoint }
}

/// Every JSON (and text) route of API.md sections 2, 4 and 5, plus the document itself. The web pages of
/// section 10 are dispatched before this table by their own module; of them, the documented sign-in and
/// sign-out are listed too (`Endpoint::Page`), so other methods on them get this table's 405.
pub static ROUTES: &[Route] = &[
    get("/healthz", Endpoint::Healthz),
    get("/readyz", Endpoint::Readyz),
    get("/metrics", Endpoint::Metrics),
    get("/openapi.yaml", Endpoint::OpenApi),
    post("/v1/ping", Endpoint::Ping),
    post("/v1/post", Endpoint::Post),
    post("/v1/leads", Endpoint::DirectPost),
    get("/v1/seller/balance", Endpoint::SellerBalance),
    get("/v1/seller/returns", Endpoint::SellerReturns),
    get("/v1/seller/statement", Endpoint::SellerStatement),
    get("/v1/buyer/balance", Endpoint::BuyerBalance),
    get("/v1/buyer/leads", Endpoint::BuyerLeads),
    get("/v1/buyer/return-policy", Endpoint::BuyerReturnPolicy),
    get("/v1/buyer/returns", Endpoint::BuyerReturns),
    get("/v1/buyer/status", Endpoint::BuyerStatus),
    post("/v1/buyer/pause", Endpoint::BuyerPause),
    post("/v1/buyer/resume", Endpoint::BuyerResume),
    get("/v1/buyer/statement", Endpoint::BuyerStatement),
    post("/v1/returns", Endpoint::FileReturn),
    get("/admin/buyers", Endpoint::Operator(Operator::Buyers)),
    get("/admin/buyers/{id}", Endpoint::Operator(Operator::Buyer)),
    post("/admin/buyers/{id}/pause", Endpoint::Operator(Operator::PauseBuyer)),
    post("/admin/buyers/{id}/resume", Endpoint::Operator(Operator::ResumeBuyer)),
    post("/admin/buyers/{id}/deposits", Endpoint::Operator(Operator::Deposit)),
    get("/admin/buyers/{id}/statement", Endpoint::Operator(Operator::BuyerStatement)),
    get("/admin/returns", Endpoint::Operator(Operator::Returns)),
    post("/admin/returns/{id}/approve", Endpoint::Operator(Operator::ApproveReturn)),
    post("/admin/returns/{id}/reject", Endpoint::Operator(Operator::RejectReturn)),
    get("/admin/pings/{ping_id}", Endpoint::Operator(Operator::PingAudit)),
    get("/admin/leads/{lead_id}", Endpoint::Operator(Operator::DeliveryRecord)),
    get("/admin/ledger/accounts", Endpoint::Operator(Operator::Accounts)),
    get("/admin/ledger/transactions", Endpoint::Operator(Operator::Transactions)),
    get("/admin/sellers/{id}/statement", Endpoint::Operator(Operator::SellerStatement)),
    post("/admin/sellers/{id}/payouts", Endpoint::Operator(Operator::Payout)),
    get("/admin/report", Endpoint::Operator(Operator::Report)),
    get("/admin/config", Endpoint::Operator(Operator::Config)),
    get("/admin/cluster", Endpoint::Operator(Operator::Cluster)),
    post("/admin/reload", Endpoint::Operator(Operator::Reload)),
    get("/login", Endpoint::Page),
    post("/login", Endpoint::Page),
    post("/logout", Endpoint::Page),
];

/// Most `{…}` segments in one pattern.
pub const MAX_PARAMS: usize = 2;

/// What a request's method and path select.
#[derive(Debug, PartialEq, Eq)]
pub enum Selected<'p> {
    /// A route, with the values of its `{…}` segments in order.
    Route(Endpoint, Params<'p>),
    /// The path is known but not with this method; the methods it takes, for `Allow`.
    WrongMethod(String),
    NotFound,
}

/// The values of a route's `{…}` segments, in order.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Params<'p>([&'p str; MAX_PARAMS]);

impl<'p> Params<'p> {
    /// The first `{…}` value (every route has at most one today; "" where it has none).
    pub fn first(&self) -> &'p str {
        self.0[0]
    }
}

/// The route for `method` on `path`. Leading, trailing and doubled slashes are ignored at the ends, as
/// they always were (`/v1/ping/` is `/v1/ping`).
pub fn select<'p>(method: &Method, path: &'p str) -> Selected<'p> {
    // Split afresh for each route (a `Split` is a cursor): no list of segments allocated per request.
    let segments = path.trim_matches('/').split('/');
    let mut allowed: Vec<&str> = Vec::new();
    for route in ROUTES {
        let Some(params) = matches(route.pattern, segments.clone()) else { continue };
        if route.method == *method {
            return Selected::Route(route.endpoint, params);
        }
        if !allowed.contains(&route.method.as_str()) {
            allowed.push(route.method.as_str());
        }
    }
    if allowed.is_empty() {
        Selected::NotFound
    } else {
        Selected::WrongMethod(allowed.join(", "))
    }
}

fn matches<'p>(pattern: &str, segments: impl Iterator<Item = &'p str>) -> Option<Params<'p>> {
    let mut params = Params::default();
    let mut taken = 0;
    let mut wanted = pattern.trim_start_matches('/').split('/');
    for segment in segments {
        let want = wanted.next()?;
        if want.starts_with('{') {
            if segment.is_empty() || taken == MAX_PARAMS {
                return None;
            }
            params.0[taken] = segment;
            taken += 1;
        } else if want != segment {
            return None;
        }
    }
    wanted.next().is_none().then_some(params)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_select_their_route_and_parameters() {
        let selected = select(&Method::POST, "/admin/buyers/acme/pause");
        assert_eq!(selected, Selected::Route(Endpoint::Operator(Operator::PauseBuyer), Params(["acme", ""])));
        assert_eq!(select(&Method::GET, "/v1/ping/"), Selected::WrongMethod("POST".into()));
        assert_eq!(select(&Method::DELETE, "/admin/buyers/x"), Selected::WrongMethod("GET".into()));
        assert_eq!(select(&Method::GET, "/admin/buyers/x/y"), Selected::NotFound);
        assert_eq!(select(&Method::GET, "/admin/buyers//statement"), Selected::NotFound);
        assert_eq!(select(&Method::GET, "/nowhere"), Selected::NotFound);
    }

    #[test]
    fn the_table_is_well_formed() {
        for (i, route) in ROUTES.iter().enumerate() {
            assert!(route.pattern.starts_with('/'), "{}", route.pattern);
            let params = route.pattern.split('/').filter(|s| s.starts_with('{')).count();
            assert!(params <= MAX_PARAMS, "{}", route.pattern);
            // A pair listed twice would leave the second unreachable.
            let twice = ROUTES[..i].iter().any(|r| r.method == route.method && r.pattern == route.pattern);
            assert!(!twice, "{} {} listed twice", route.method, route.pattern);
            // A literal route listed after a pattern that already takes its path would be unreachable too.
            let concrete = route.pattern.replace(['{', '}'], "");
            let first = select(&route.method, &concrete);
            assert_eq!(
                first,
                Selected::Route(
                    route.endpoint,
                    matches(route.pattern, concrete_segments(&concrete).into_iter()).unwrap()
                )
            );
        }
    }

    fn concrete_segments(path: &str) -> Vec<&str> {
        path.trim_matches('/').split('/').collect()
    }
}
