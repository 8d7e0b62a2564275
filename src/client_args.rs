//! The flags every command that talks to D365 shares (`run`, `export`):
//! where credentials may go, how much of an answer is read, and the
//! workload-identity token. One definition, so both commands check alike.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use sales_order_operator::d365::{
    DEFAULT_AUTHORITY_HOSTS, DEFAULT_INSECURE_HOSTS, Destinations, HostPattern,
};

#[derive(Args, Debug, Clone)]
pub struct ClientArgs {
    /// Hosts the client secret may be sent to (token requests),
    /// comma-separated, matched exactly; `host:port` allows one port only.
    /// Default: Entra's login hosts (docs/operations.md).
    #[arg(long, env = "ALLOWED_AUTHORITY_HOSTS", default_value = DEFAULT_AUTHORITY_HOSTS)]
    allowed_authority_hosts: String,
    /// Hosts that connection URLs may reach over plain http,
    /// comma-separated; every other host needs https.
    #[arg(long, env = "ALLOW_INSECURE_HOSTS", default_value = DEFAULT_INSECURE_HOSTS)]
    allow_insecure_hosts: String,
    /// Largest D365 answer (data, a page, or `$batch`) read, in bytes; a
    /// larger one is refused as "answer too large" without reading the
    /// rest. The default holds a `$batch` of 5,000 answers three times over.
    #[arg(long, env = "MAX_ANSWER_BYTES", default_value_t = 16 << 20,
          value_parser = clap::value_parser!(u64).range(1024..=1 << 30))]
    max_answer_bytes: u64,
    /// The projected ServiceAccount token (audience
    /// api://AzureADTokenExchange) that connections with
    /// `auth.workloadIdentity` exchange for Entra tokens. The
    /// azure-workload-identity webhook and the chart's `workloadIdentity`
    /// values set it; unset, such connections are refused.
    #[arg(long, env = "AZURE_FEDERATED_TOKEN_FILE")]
    pub workload_identity_token_file: Option<PathBuf>,
}

impl ClientArgs {
    /// The two host lists, or which flag is malformed.
    pub fn destinations(&self) -> anyhow::Result<Destinations> {
        Ok(Destinations::new(
            HostPattern::list(&self.allowed_authority_hosts)
                .context("--allowed-authority-hosts")?,
            HostPattern::list(&self.allow_insecure_hosts).context("--allow-insecure-hosts")?,
        ))
    }

    pub fn max_answer_bytes(&self) -> usize {
        usize::try_from(self.max_answer_bytes).unwrap_or(usize::MAX)
    }
}
