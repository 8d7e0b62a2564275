//! Builders on the CRD types for tests: a test says only what differs from
//! a typical order or connection, so a new spec field is one edit here, not
//! one in every test. The defaults match the emulator's generated orders
//! and credentials. Compiled only with the `fixtures` feature, which the
//! test targets turn on (a dev-dependency of the crate on itself); the
//! shipped binary never contains it.

use d365_emulator::{DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, DEFAULT_TENANT};
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};

use crate::api::{
    CREDENTIALS_LABEL, ClientCertificateRef, ClientSecretRef, ConnectionAuth, ConnectionRef,
    D365Connection, D365ConnectionSpec, FieldMapping, Policy, SalesOrderStatus,
    SalesOrderStatusSpec, SalesStatus, WorkloadIdentity,
};

/// Name of the connection every fixture order uses.
pub const CONNECTION: &str = "usmf";
/// Secret (and its key) every fixture connection reads its client secret from.
pub const SECRET: &str = "d365-credentials";
pub const SECRET_KEY: &str = "client-secret";

/// Number of the emulator's generated order `n`: `SO-2025-000n`.
pub fn order_number(n: usize) -> String {
    format!("SO-2025-{n:04}")
}

impl SalesOrderStatusSpec {
    /// Order `number` of company USMF through [`CONNECTION`], wanted in
    /// `status` with delivery date 2025-02-08, policy Enforce.
    pub fn test(number: &str, status: SalesStatus) -> Self {
        Self {
            connection_ref: ConnectionRef {
                name: CONNECTION.into(),
            },
            data_area_id: "USMF".into(),
            sales_order_number: number.into(),
            sales_status: status,
            delivery_date: Some("2025-02-08".into()),
            policy: Policy::Enforce,
            suspend: false,
        }
    }
}

impl SalesOrderStatus {
    /// The emulator's generated order `n`, named `so-2025-000n`, wanted
    /// Delivered (see [`SalesOrderStatusSpec::test`]).
    pub fn test(n: usize) -> Self {
        let number = order_number(n);
        Self::new(
            &number.to_ascii_lowercase(),
            SalesOrderStatusSpec::test(&number, SalesStatus::Delivered),
        )
    }

    pub fn wanting(mut self, status: SalesStatus) -> Self {
        self.spec.sales_status = status;
        self
    }

    /// The D365 order it names: company and number.
    pub fn for_order(mut self, data_area_id: &str, number: &str) -> Self {
        self.spec.data_area_id = data_area_id.into();
        self.spec.sales_order_number = number.into();
        self
    }

    /// Wanting this delivery date, or none (`spec.deliveryDate` absent).
    pub fn delivering(mut self, date: Option<&str>) -> Self {
        self.spec.delivery_date = date.map(str::to_owned);
        self
    }

    pub fn observing(mut self) -> Self {
        self.spec.policy = Policy::Observe;
        self
    }

    pub fn suspended(mut self) -> Self {
        self.spec.suspend = true;
        self
    }

    pub fn labelled(mut self, key: &str, value: &str) -> Self {
        self.metadata
            .labels
            .get_or_insert_default()
            .insert(key.into(), value.into());
        self
    }

    /// Through connection `name` (same namespace) instead of [`CONNECTION`].
    pub fn via(mut self, connection: &str) -> Self {
        self.spec.connection_ref.name = connection.into();
        self
    }

    /// As the API server stamps it: created at `second` (Unix time), with
    /// a uid derived from its namespace and name.
    pub fn created_at(mut self, second: i64) -> Self {
        let at = jiff::Timestamp::from_second(second).expect("a valid test time");
        self.metadata.creation_timestamp = Some(Time(at));
        self.metadata.uid = Some(format!(
            "uid-{}-{}",
            self.metadata.namespace.as_deref().unwrap_or_default(),
            self.metadata.name.as_deref().unwrap_or_default()
        ));
        self
    }

    /// As the API server stores it after `generation` spec changes.
    pub fn at_generation(mut self, generation: i64) -> Self {
        self.metadata.generation = Some(generation);
        self
    }
}

impl D365Connection {
    /// Connection [`CONNECTION`] to an emulator at `url` (also its token
    /// authority) with the emulator's tenant and client id, the client
    /// secret in Secret [`SECRET`], and limits generous enough for tests.
    pub fn test(url: &str) -> Self {
        Self::new(
            CONNECTION,
            D365ConnectionSpec {
                url: url.to_owned(),
                entity_set: "SalesOrderHeadersV2".into(),
                auth: ConnectionAuth {
                    tenant_id: DEFAULT_TENANT.into(),
                    client_id: DEFAULT_CLIENT_ID.into(),
                    client_secret_ref: Some(ClientSecretRef {
                        name: SECRET.into(),
                        key: SECRET_KEY.into(),
                    }),
                    client_certificate_ref: None,
                    workload_identity: None,
                    authority_url: Some(url.to_owned()),
                    scope: None,
                },
                fields: FieldMapping::default(),
                final_statuses: vec![SalesStatus::Invoiced, SalesStatus::Canceled],
                max_requests_per_second: 500,
                max_concurrent_requests: 32,
                adaptive_concurrency: false,
                request_timeout_seconds: 5,
                batch: None,
            },
        )
    }
}

impl D365Connection {
    /// Authenticating with the operator's workload identity instead.
    pub fn with_workload_identity(mut self) -> Self {
        self.spec.auth.client_secret_ref = None;
        self.spec.auth.workload_identity = Some(WorkloadIdentity {});
        self
    }

    /// Authenticating with the certificate in `kubernetes.io/tls` Secret
    /// `secret` instead.
    pub fn with_client_certificate(mut self, secret: &str) -> Self {
        self.spec.auth.client_secret_ref = None;
        self.spec.auth.client_certificate_ref = Some(ClientCertificateRef {
            name: secret.into(),
            certificate_key: "tls.crt".into(),
            private_key_key: "tls.key".into(),
        });
        self
    }
}

impl crate::d365::ConnectionSettings {
    /// Client settings for the emulator at `url`, which is also its token
    /// authority, on loopback (allowed as an authority here, as the demo
    /// and tests allow it), with the emulator's test credentials.
    pub fn emulator(url: &str) -> Self {
        let url = url::Url::parse(url).expect("an emulator URL");
        let mut settings = Self::new(
            url.clone(),
            url,
            DEFAULT_TENANT,
            DEFAULT_CLIENT_ID,
            DEFAULT_CLIENT_SECRET.to_owned().into(),
        );
        settings.destinations =
            crate::d365::Destinations::parse("127.0.0.1", crate::d365::DEFAULT_INSECURE_HOSTS)
                .expect("loopback hosts");
        settings
    }
}

/// A `kubernetes.io/tls` Secret `name` holding a client certificate and
/// its key (PEM), labelled as credentials.
pub fn tls_secret(name: &str, certificate: &str, private_key: &str) -> Secret {
    Secret {
        metadata: ObjectMeta {
            name: Some(name.into()),
            ..ObjectMeta::default()
        },
        type_: Some("kubernetes.io/tls".into()),
        string_data: Some(
            [
                ("tls.crt".into(), certificate.into()),
                ("tls.key".into(), private_key.into()),
            ]
            .into(),
        ),
        ..Secret::default()
    }
    .with_credentials_label()
}

/// Secret [`SECRET`] holding the emulator's client secret under
/// [`SECRET_KEY`], labelled as credentials (the operator reads no other).
pub fn secret() -> Secret {
    unlabelled_secret().with_credentials_label()
}

/// [`secret`] without the credentials label: the operator must not read it.
pub fn unlabelled_secret() -> Secret {
    Secret {
        metadata: ObjectMeta {
            name: Some(SECRET.into()),
            ..ObjectMeta::default()
        },
        string_data: Some([(SECRET_KEY.into(), DEFAULT_CLIENT_SECRET.into())].into()),
        ..Secret::default()
    }
}

/// Opting a Secret in to being read by the operator.
pub trait CredentialsLabel {
    fn with_credentials_label(self) -> Self;
}

impl CredentialsLabel for Secret {
    fn with_credentials_label(mut self) -> Self {
        self.metadata
            .labels
            .get_or_insert_default()
            .insert(CREDENTIALS_LABEL.into(), "true".into());
        self
    }
}

/// Naming and placing any fixture object, orders and connections alike.
pub trait Placed: kube::Resource + Sized {
    fn named(mut self, name: &str) -> Self {
        self.meta_mut().name = Some(name.into());
        self
    }

    fn in_namespace(mut self, namespace: &str) -> Self {
        self.meta_mut().namespace = Some(namespace.into());
        self
    }
}

impl Placed for SalesOrderStatus {}
impl Placed for D365Connection {}
impl Placed for Secret {}
