//! Shared helpers: start an emulator on loopback and talk to it over HTTP.

use d365_emulator::{
    Config, DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, DEFAULT_TENANT, Emulator, Faults,
};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

pub struct Env {
    pub emu: Emulator,
    pub http: reqwest::Client,
    pub token: String,
}

pub fn seed_orders() -> Vec<Value> {
    let mut v = d365_emulator::generate_orders(5, 7);
    v.push(json!({"dataAreaId": "USSI", "SalesOrderNumber": "SO-SI-1", "SalesOrderStatus": "Backorder"}));
    v.push(json!({"dataAreaId": "usmf", "SalesOrderNumber": "O'Brien/1", "SalesOrderStatus": "Delivered"}));
    v.push(
        json!({"dataAreaId": "usmf", "SalesOrderNumber": "SO-INV", "SalesOrderStatus": "Invoiced"}),
    );
    v
}

pub async fn start_with(config: Config) -> Env {
    let emu = Emulator::start(config).await.expect("start emulator");
    let http = reqwest::Client::new();
    let token = token(&http, &emu).await;
    Env { emu, http, token }
}

pub async fn start() -> Env {
    start_with(Config {
        orders: seed_orders(),
        ..Config::default()
    })
    .await
}

pub async fn start_faults(faults: Faults) -> Env {
    start_with(Config {
        orders: seed_orders(),
        faults,
        ..Config::default()
    })
    .await
}

pub async fn token(http: &reqwest::Client, emu: &Emulator) -> String {
    let r = http
        .post(format!("{}/{DEFAULT_TENANT}/oauth2/v2.0/token", emu.url()))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", DEFAULT_CLIENT_ID),
            ("client_secret", DEFAULT_CLIENT_SECRET),
            ("scope", &format!("{}/.default", emu.url())),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    v["access_token"].as_str().unwrap().to_string()
}

/// `SalesOrderHeadersV2(dataAreaId='..',SalesOrderNumber='..')` with quotes
/// doubled and `%`, `/`, `\`, `+` encoded twice, as F&O's routing wants
/// (it decodes the path once before OData does).
pub fn key_path(area: &str, number: &str) -> String {
    let value = |v: &str| {
        v.replace('\'', "''")
            .replace('%', "%2525")
            .replace('/', "%252F")
            .replace('\\', "%255C")
            .replace('+', "%252B")
    };
    format!(
        "SalesOrderHeadersV2(dataAreaId='{}',SalesOrderNumber='{}')",
        value(area),
        value(number)
    )
}

impl Env {
    pub fn data(&self, rest: &str) -> String {
        format!("{}/data/{rest}", self.emu.url())
    }

    pub async fn get(&self, rest: &str) -> reqwest::Response {
        self.http
            .get(self.data(rest))
            .bearer_auth(&self.token)
            .send()
            .await
            .unwrap()
    }

    pub async fn get_json(&self, rest: &str) -> Value {
        let r = self.get(rest).await;
        assert_eq!(r.status(), 200, "GET {rest}");
        r.json().await.unwrap()
    }

    pub async fn patch(
        &self,
        rest: &str,
        if_match: Option<&str>,
        body: Value,
    ) -> reqwest::Response {
        let mut req = self
            .http
            .patch(self.data(rest))
            .bearer_auth(&self.token)
            .json(&body);
        if let Some(e) = if_match {
            req = req.header("If-Match", e);
        }
        req.send().await.unwrap()
    }

    /// URL of an admin resource (`/_emulator/{path}`, no auth).
    pub fn admin(&self, path: &str) -> String {
        format!("{}/_emulator/{path}", self.emu.url())
    }

    /// GET of an admin resource, decoded.
    pub async fn admin_get<T: DeserializeOwned>(&self, path: &str) -> T {
        json_of(self.http.get(self.admin(path))).await
    }

    /// Current ETag of an order, read over HTTP.
    pub async fn etag(&self, area: &str, number: &str) -> String {
        let v = self
            .get_json(&format!("{}?cross-company=true", key_path(area, number)))
            .await;
        v["@odata.etag"].as_str().unwrap().to_string()
    }
}

/// Sends a request and decodes its JSON answer, whatever the status.
pub async fn json_of<T: DeserializeOwned>(req: reqwest::RequestBuilder) -> T {
    req.send().await.unwrap().json().await.unwrap()
}

/// The `innererror.message` of a D365 error body.
pub async fn inner_message(r: reqwest::Response) -> (u16, String) {
    let status = r.status().as_u16();
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["message"], "An error has occurred.");
    assert_eq!(v["error"]["code"], "");
    (
        status,
        v["error"]["innererror"]["message"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
    )
}
