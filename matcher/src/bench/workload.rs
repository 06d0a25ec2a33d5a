//! A synthetic, reproducible matching workload: tenants of about 100 actions each over 160 event
//! types (20 entities x 8 verbs), actions with realistic pattern and condition mixes, and
//! ~400-byte events with nested data and arrays. The same seed always gives the same files.

use rand::rngs::StdRng;
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};

pub const ENTITIES: [&str; 20] = [
    "user",
    "order",
    "payment",
    "invoice",
    "customer",
    "subscription",
    "product",
    "cart",
    "shipment",
    "refund",
    "account",
    "session",
    "ticket",
    "message",
    "review",
    "coupon",
    "plan",
    "team",
    "project",
    "file",
];
pub const VERBS: [&str; 8] = [
    "created",
    "updated",
    "deleted",
    "archived",
    "restored",
    "approved",
    "rejected",
    "completed",
];
const CURRENCIES: [&str; 6] = ["usd", "eur", "gbp", "jpy", "chf", "cad"];
const TIERS: [&str; 4] = ["free", "silver", "gold", "platinum"];
const STATUSES: [&str; 5] = ["active", "pending", "past_due", "canceled", "trialing"];
const COUNTRIES: [&str; 8] = ["US", "DE", "FR", "GB", "JP", "CA", "BR", "IN"];
const REGIONS: [&str; 4] = ["eu", "us", "apac", "latam"];
const DOMAINS: [&str; 4] = ["example.com", "corp.test", "mail.test", "shop.test"];
const SOURCES: [&str; 5] = ["billing", "crm", "shop", "auth", "support"];

/// What to generate.
#[derive(Debug, Clone, Copy)]
pub struct Workload {
    pub actions: usize,
    pub events: usize,
    pub actions_per_tenant: usize,
    /// One tenant holds 20% of the actions and receives 20% of the events.
    pub skewed: bool,
    pub seed: u64,
}

impl Workload {
    pub fn new(actions: usize, events: usize, skewed: bool) -> Self {
        Self {
            actions,
            events,
            actions_per_tenant: 100,
            skewed,
            seed: 0x4845_5241_4c44,
        }
    }

    fn tenants(&self) -> usize {
        let spread = if self.skewed {
            self.actions - self.hot_actions()
        } else {
            self.actions
        };
        spread.div_ceil(self.actions_per_tenant).max(1)
    }

    fn hot_actions(&self) -> usize {
        if self.skewed { self.actions / 5 } else { 0 }
    }

    /// The tenant id of tenant number `n` (tenant 0 is the hot one in a skewed workload).
    pub fn tenant_id(&self, n: usize) -> String {
        let uuid = uuid::Uuid::from_u128(0x0190_0000_0000_7000_8000_0000_0000_0000 | n as u128);
        herald_common::ids::TenantId::from(uuid).to_string()
    }

    /// The tenant of action number `i`.
    fn tenant_of_action(&self, i: usize) -> usize {
        let hot = self.hot_actions();
        if i < hot {
            0
        } else {
            let offset = usize::from(self.skewed);
            offset + (i - hot) / self.actions_per_tenant
        }
    }

    /// Writes the actions, one JSON object per line.
    pub fn write_actions(&self, out: &mut impl std::io::Write) -> std::io::Result<()> {
        let mut rng = StdRng::seed_from_u64(self.seed);
        for i in 0..self.actions {
            let action = self.action(i, &mut rng);
            serde_json::to_writer(&mut *out, &action)?;
            out.write_all(b"\n")?;
        }
        Ok(())
    }

    /// Writes the events, one JSON object per line.
    pub fn write_events(&self, out: &mut impl std::io::Write) -> std::io::Result<()> {
        let mut rng = StdRng::seed_from_u64(self.seed ^ 0x5eed);
        let tenants = self.tenants() + usize::from(self.skewed);
        for i in 0..self.events {
            let tenant = if self.skewed && rng.random_bool(0.2) {
                0
            } else if self.skewed {
                rng.random_range(1..tenants)
            } else {
                rng.random_range(0..tenants)
            };
            let event = self.event(i, tenant, &mut rng);
            out.write_all(event.as_bytes())?;
            out.write_all(b"\n")?;
        }
        Ok(())
    }

    fn action(&self, i: usize, rng: &mut StdRng) -> Value {
        let event_type = |rng: &mut StdRng| {
            format!(
                "{}.{}",
                ENTITIES.choose(rng).unwrap(),
                VERBS.choose(rng).unwrap()
            )
        };
        let roll: f64 = rng.random();
        let event_types: Vec<String> = if roll < 0.60 {
            vec![event_type(rng)]
        } else if roll < 0.75 {
            let n = rng.random_range(2..=3);
            (0..n).map(|_| event_type(rng)).collect()
        } else if roll < 0.90 {
            vec![format!("{}.*", ENTITIES.choose(rng).unwrap())]
        } else {
            vec!["#".to_owned()]
        };
        let conditions: Vec<Value> = (0..rng.random_range(0..=3))
            .map(|_| condition(rng))
            .collect();
        let priority = [10, 50, 100, 100, 100, 200][rng.random_range(0..6)];
        json!({
            "tenant_id": self.tenant_id(self.tenant_of_action(i)),
            "name": format!("action-{i:07}"),
            "event_types": event_types,
            "conditions": conditions,
            "priority": priority,
            "handler": {"type": "webhook", "url": format!("https://hooks.example.com/{i}"),
                        "secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"},
        })
    }

    fn event(&self, i: usize, tenant: usize, rng: &mut StdRng) -> String {
        let items: Vec<Value> = (0..rng.random_range(1..=3))
            .map(|_| {
                json!({"sku": format!("sku-{}", rng.random_range(0..20)), "qty": rng.random_range(1..5),
                       "price": (rng.random_range(100..10_000) as f64) / 100.0})
            })
            .collect();
        let mut data = json!({
            "amount": rng.random_range(0..100_000),
            "currency": CURRENCIES.choose(rng).unwrap(),
            "status": STATUSES.choose(rng).unwrap(),
            "customer": {
                "id": format!("cus_{:08x}", rng.random::<u32>()),
                "email": format!("user{}@{}", rng.random_range(0..1000), DOMAINS.choose(rng).unwrap()),
                "tier": TIERS.choose(rng).unwrap(),
                "country": COUNTRIES.choose(rng).unwrap(),
            },
            "items": items,
            "tags": [format!("t{}", rng.random_range(0..10)), format!("t{}", rng.random_range(0..10))],
        });
        if rng.random_bool(0.3) {
            data["coupon"] = json!(format!("SAVE{}", rng.random_range(5..50)));
        }
        // Written field by field in the contract's order, tenant first, as a publisher would.
        let event_type = format!(
            "{}.{}",
            ENTITIES.choose(rng).unwrap(),
            VERBS.choose(rng).unwrap()
        );
        let metadata = json!({"region": REGIONS.choose(rng).unwrap(), "env": "prod"});
        format!(
            r#"{{"tenant_id":"{}","id":"evt-{i:09}","type":"{event_type}","source":"{}","data":{data},"metadata":{metadata}}}"#,
            self.tenant_id(tenant),
            SOURCES.choose(rng).unwrap(),
        )
    }
}

/// One condition from the mix: equals, in, starts_with, exists, not_exists, not_in, ends_with,
/// metadata equality, over fields the events carry.
fn condition(rng: &mut StdRng) -> Value {
    match rng.random_range(0..8) {
        0 => {
            json!({"path": "data.currency", "op": "equals", "value": CURRENCIES.choose(rng).unwrap()})
        }
        1 => {
            let tiers: Vec<&str> = TIERS.choose_multiple(rng, 2).copied().collect();
            json!({"path": "data.customer.tier", "op": "in", "value": tiers})
        }
        2 => {
            json!({"path": "data.status", "op": "starts_with", "value": &STATUSES.choose(rng).unwrap()[..3]})
        }
        3 => json!({"path": "data.coupon", "op": "exists"}),
        4 => json!({"path": "data.coupon", "op": "not_exists"}),
        5 => {
            let countries: Vec<&str> = COUNTRIES.choose_multiple(rng, 3).copied().collect();
            json!({"path": "data.customer.country", "op": "not_in", "value": countries})
        }
        6 => {
            json!({"path": "data.customer.email", "op": "ends_with", "value": format!("@{}", DOMAINS.choose(rng).unwrap())})
        }
        _ => {
            json!({"path": "metadata.region", "op": "equals", "value": REGIONS.choose(rng).unwrap()})
        }
    }
}
