//! The routes ingest serves beside the API: the operator console's page and scripts, and the
//! operations endpoints every service has. They are not in the operation table nor in the
//! OpenAPI document (they are not the API), so they are listed here instead: each answers
//! anyone, and a route written anywhere in ingest's or common's code that is neither an
//! operation nor on this list fails the test.

use std::path::Path;

use herald_tests::Sandbox;
use reqwest::redirect::Policy;

/// A route as the router declares it, a path it serves, and what anyone gets there.
struct Outside {
    route: &'static str,
    example: &'static str,
    status: u16,
    /// Where a redirect points.
    location: Option<&'static str>,
}

const OUTSIDE_THE_API: &[Outside] = &[
    Outside {
        route: "/",
        example: "/",
        status: 303,
        location: Some("/ui/"),
    },
    Outside {
        route: "/ui",
        example: "/ui",
        status: 303,
        location: Some("/ui/"),
    },
    Outside {
        route: "/ui/",
        example: "/ui/",
        status: 200,
        location: None,
    },
    Outside {
        route: "/ui/{*path}",
        example: "/ui/js/app.js",
        status: 200,
        location: None,
    },
    Outside {
        route: "/healthz",
        example: "/healthz",
        status: 200,
        location: None,
    },
    Outside {
        route: "/readyz",
        example: "/readyz",
        status: 200,
        location: None,
    },
    Outside {
        route: "/metrics",
        example: "/metrics",
        status: 200,
        location: None,
    },
];

/// Every string literal passed as the path of `.route(` in the `.rs` files under `dir`. The
/// operation table's routes are not literals (`operation.path`), so they are not among them.
fn declared_routes(dir: &Path, found: &mut Vec<String>) {
    for entry in std::fs::read_dir(dir).expect("a source folder") {
        let path = entry.expect("an entry").path();
        if path.is_dir() {
            declared_routes(&path, found);
        } else if path.extension().is_some_and(|e| e == "rs") {
            let text = std::fs::read_to_string(&path).expect("a source file");
            for (_, after) in text
                .match_indices(".route(")
                .map(|(i, _)| text.split_at(i + 7))
            {
                if let Some(literal) = after.trim_start().strip_prefix('"') {
                    let end = literal.find('"').expect("a closed literal");
                    found.push(literal[..end].to_owned());
                }
            }
        }
    }
}

#[test]
fn every_route_outside_the_operation_table_is_listed() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut declared = Vec::new();
    for dir in ["ingest/src", "common/src"] {
        declared_routes(&root.join(dir), &mut declared);
    }
    declared.sort();
    let mut listed: Vec<String> = OUTSIDE_THE_API.iter().map(|o| o.route.to_owned()).collect();
    listed.sort();
    assert_eq!(
        declared, listed,
        "a route outside the operation table: make it an operation (api.rs), or list it in \
         OUTSIDE_THE_API with its public answer"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_routes_outside_the_api_answer_anyone() {
    let sandbox = Sandbox::start().await;
    // Redirects are what is checked, not followed.
    let http = reqwest::Client::builder()
        .redirect(Policy::none())
        .build()
        .expect("a client");
    for outside in OUTSIDE_THE_API {
        // No credential, and a wrong one: neither changes the answer.
        for token in [None, Some("hk_0000000000000000000000000000000000000000")] {
            let mut request = http.get(sandbox.api_url(outside.example));
            if let Some(token) = token {
                request = request.bearer_auth(token);
            }
            let response = request.send().await.expect("ingest reachable");
            let what = format!("{} ({}) with {token:?}", outside.example, outside.route);
            assert_eq!(response.status().as_u16(), outside.status, "{what}");
            let location = response
                .headers()
                .get("location")
                .and_then(|l| l.to_str().ok());
            assert_eq!(location, outside.location, "{what}");
            let body = response.text().await.expect("a body");
            assert!(outside.status != 200 || !body.is_empty(), "{what}: empty");
        }
    }
    // Anything else is the API's 404, in the API's error shape.
    let (status, answer) = sandbox
        .call(reqwest::Method::GET, "/not-a-route", None, None)
        .await;
    assert_eq!(
        (status, answer["error"]["code"].as_str()),
        (404, Some("not_found"))
    );
    sandbox.stop().await;
}
