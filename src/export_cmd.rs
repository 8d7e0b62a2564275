//! `sales-order-operator export`: the flags and the run of the binary side
//! of `sales_order_operator::export` (which holds the logic and its tests).

use std::io::Write as _;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context as _;
use clap::{Args, ValueEnum};
use kube::runtime::reflector;
use sales_order_operator::api::{D365Connection, Policy, SalesStatus};
use sales_order_operator::controller::Connections;
use sales_order_operator::d365::{
    ConnectionSettings, Credential, D365Client, Destinations, NoopObserver,
};
use sales_order_operator::export::{self, Collected, Target};
use sales_order_operator::reconcile::FieldNames;
use sales_order_operator::telemetry::{self, LogFormat};
use secrecy::SecretString;
use url::Url;

/// The environment variable holding the client secret with `--url`: never
/// a flag, whose value every user of the machine sees in `ps`.
const SECRET_ENV: &str = "D365_CLIENT_SECRET";

const AFTER_HELP: &str = "\
Enum literals in --filter must be qualified, as D365 requires:
  --filter \"SalesOrderStatus eq Microsoft.Dynamics.DataEntities.SalesStatus'Backorder'\"
(--status Backorder writes exactly that.)
Strings are quoted with ': --filter \"dataAreaId eq 'usmf' and SalesOrderNumber ge 'SO-2025'\"

Reads the D365Connection (and its labelled Secret) from the cluster, or,
with --url, connects with --tenant-id, --client-id and the client secret in
the environment variable D365_CLIENT_SECRET (or the token in
--workload-identity-token-file). Manifests go to stdout (or --output),
progress to stderr.";

/// Prints SalesOrderStatus manifests (policy Observe) for existing orders.
#[derive(Args, Debug)]
#[command(after_help = AFTER_HELP)]
pub struct ExportArgs {
    /// The D365Connection the manifests name (spec.connectionRef.name);
    /// without --url, also read from the cluster to reach D365.
    #[arg(long)]
    connection: String,
    /// Namespace of the connection, written into every manifest (default:
    /// the kubeconfig's; with --url, none unless given).
    #[arg(short = 'n', long)]
    namespace: Option<String>,
    /// OData $filter choosing the orders, sent as written (all orders
    /// when absent); see below for enum literals.
    #[arg(long)]
    filter: Option<String>,
    /// Only orders in these statuses, comma-separated (Backorder,
    /// Delivered, Invoiced, Canceled): written as the qualified enum
    /// literals D365 needs, and-ed with --filter.
    #[arg(long, value_delimiter = ',', value_parser = parse_status)]
    status: Vec<SalesStatus>,
    /// spec.policy of the manifests: Observe applies as a no-op; Enforce
    /// makes D365 follow later edits at once.
    #[arg(long, value_enum, default_value = "observe")]
    policy: PolicyArg,
    /// Write the manifests to this file instead of stdout.
    #[arg(short, long)]
    output: Option<PathBuf>,
    /// No progress lines and no summary on stderr (skipped orders are
    /// still reported).
    #[arg(short, long)]
    quiet: bool,
    #[command(flatten)]
    direct: DirectArgs,
    #[command(flatten)]
    client: crate::client_args::ClientArgs,
}

/// A connection given by flags instead of the cluster.
#[derive(Args, Debug)]
struct DirectArgs {
    /// Environment URL (e.g. https://contoso.operations.dynamics.com);
    /// the cluster is not contacted.
    #[arg(long, requires_all = ["tenant_id", "client_id"])]
    url: Option<Url>,
    /// Entra tenant (directory) id, with --url.
    #[arg(long, requires = "url")]
    tenant_id: Option<String>,
    /// Application (client) id, with --url.
    #[arg(long, requires = "url")]
    client_id: Option<String>,
    /// Entra authority, with --url (sovereign clouds differ).
    #[arg(long, default_value = "https://login.microsoftonline.com")]
    authority_url: Url,
    /// Entity set of the orders, with --url.
    #[arg(long, default_value = "SalesOrderHeadersV2")]
    entity_set: String,
    /// Entity field holding the status (the connection's spec.fields).
    #[arg(long, default_value = "SalesOrderStatus")]
    status_field: String,
    /// Entity field holding the delivery date.
    #[arg(long, default_value = "ConfirmedReceiptDate")]
    date_field: String,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum PolicyArg {
    Observe,
    Enforce,
}

/// Where the orders are read from, and how their fields are named.
struct Source {
    client: D365Client,
    status_field: String,
    date_field: String,
    namespace: Option<String>,
}

/// Reads, names, renders, writes. Only warnings are logged (to stderr):
/// stdout carries the manifests alone, so it can be piped to a file.
pub async fn export(args: ExportArgs) -> anyhow::Result<()> {
    telemetry::init(LogFormat::Text, "warn");
    let destinations = args.client.destinations()?;
    let source = match &args.direct.url {
        Some(url) => direct(&args, url.clone(), destinations)?,
        None => from_cluster(&args, destinations).await?,
    };
    let names = FieldNames {
        sales_status: &source.status_field,
        delivery_date: &source.date_field,
    };
    let filter = export::with_statuses(names.sales_status, &args.status, args.filter.as_deref());
    let mut pages = source
        .client
        .order_pages(&export::select(names), filter.as_deref())
        .context("building the query")?;
    let quiet = args.quiet;
    let collected = export::collect(&mut pages, names, |c| progress(c, quiet))
        .await
        .context("reading orders from D365")?;
    report(&collected, quiet);
    let target = Target {
        connection: args.connection.clone(),
        namespace: source.namespace,
        policy: match args.policy {
            PolicyArg::Observe => Policy::Observe,
            PolicyArg::Enforce => Policy::Enforce,
        },
    };
    let manifests = export::manifests(&collected.rows, &target)?;
    let yaml = export::manifest::render(&manifests).context("rendering YAML")?;
    match &args.output {
        Some(path) => {
            std::fs::write(path, yaml).with_context(|| format!("writing {}", path.display()))?
        }
        None => std::io::stdout()
            .lock()
            .write_all(yaml.as_bytes())
            .context("writing to stdout")?,
    }
    if !quiet {
        eprintln!("wrote {} manifests", manifests.len());
    }
    Ok(())
}

/// A `--status` value, any case.
fn parse_status(text: &str) -> Result<SalesStatus, String> {
    let all = [
        SalesStatus::Backorder,
        SalesStatus::Delivered,
        SalesStatus::Invoiced,
        SalesStatus::Canceled,
    ];
    all.into_iter()
        .find(|s| s.as_str().eq_ignore_ascii_case(text.trim()))
        .ok_or_else(|| format!("{text:?} is not one of Backorder, Delivered, Invoiced, Canceled"))
}

/// One line a page: a large export shows it is moving.
fn progress(c: &Collected, quiet: bool) {
    if !quiet {
        eprintln!("exported {} orders ({} pages)…", c.read, c.pages);
    }
}

/// What was not exported, and why: always, since it needs a human.
fn report(c: &Collected, quiet: bool) {
    for why in &c.skipped {
        eprintln!("skipped: {why}");
    }
    for (dropped, kept) in &c.duplicates {
        eprintln!(
            "skipped: order {dropped} repeats {kept} (F&O compares order numbers case-insensitively)"
        );
    }
    if !quiet {
        eprintln!(
            "read {} orders: {} to declare, {} skipped, {} repeated",
            c.read,
            c.rows.len(),
            c.skipped.len(),
            c.duplicates.len()
        );
    }
}

/// A client from flags: the secret from [`SECRET_ENV`], else the
/// workload identity token file.
fn direct(args: &ExportArgs, url: Url, destinations: Destinations) -> anyhow::Result<Source> {
    let d = &args.direct;
    let credential = match std::env::var(SECRET_ENV) {
        Ok(secret) if !secret.trim().is_empty() => {
            Credential::ClientSecret(SecretString::from(secret.trim().to_owned()))
        }
        _ => match &args.client.workload_identity_token_file {
            Some(path) => Credential::WorkloadIdentity(path.clone()),
            None => anyhow::bail!(
                "--url needs a credential: the client secret in the environment variable \
                 {SECRET_ENV}, or --workload-identity-token-file"
            ),
        },
    };
    let mut settings = ConnectionSettings::with_credential(
        url,
        d.authority_url.clone(),
        d.tenant_id.clone().unwrap_or_default(),
        d.client_id.clone().unwrap_or_default(),
        credential,
    );
    settings.entity_set = d.entity_set.clone();
    settings.destinations = destinations;
    settings.max_answer_bytes = args.client.max_answer_bytes();
    let client =
        D365Client::new(settings, Arc::new(NoopObserver)).context("the connection flags")?;
    Ok(Source {
        client,
        status_field: d.status_field.clone(),
        date_field: d.date_field.clone(),
        namespace: args.namespace.clone(),
    })
}

/// A client from the D365Connection in the cluster, built as `run`
/// builds it (its labelled Secret, the same destinations and limits).
async fn from_cluster(args: &ExportArgs, destinations: Destinations) -> anyhow::Result<Source> {
    let kube = kube::Client::try_default()
        .await
        .context("connecting to the Kubernetes API (KUBECONFIG or in-cluster)")?;
    let namespace = args
        .namespace
        .clone()
        .unwrap_or_else(|| kube.default_namespace().to_owned());
    let api: kube::Api<D365Connection> = kube::Api::namespaced(kube.clone(), &namespace);
    let conn = api
        .get(&args.connection)
        .await
        .with_context(|| format!("reading D365Connection {namespace}/{}", args.connection))?;
    let connections = Connections::new(
        reflector::store().0,
        reflector::store().0,
        Arc::new(kube),
        Arc::new(NoopObserver),
    )
    .with_destinations(destinations)
    .with_answer_limit(args.client.max_answer_bytes())
    .with_workload_identity(args.client.workload_identity_token_file.clone());
    let resolved = connections.resolve_now(&conn).await?;
    Ok(Source {
        client: resolved.client,
        status_field: resolved.rules.status_field.clone(),
        date_field: resolved.rules.date_field.clone(),
        namespace: Some(namespace),
    })
}
