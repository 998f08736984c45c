//! Revokes from outside the servers, in the Redis every replica shares (what an admin
//! endpoint of yours would do with [`Revocations`]).
//!
//! ```text
//! cargo run --features redis --example revoke -- --redis redis://127.0.0.1:6379 --jti ID --exp UNIX_SECONDS
//! cargo run --features redis --example revoke -- --redis URL --subject ada [--before UNIX_SECONDS]
//! cargo run --features redis --example revoke -- --redis URL --token gat_...
//! ```
//! Every `greeter_server --redis URL` refuses the token on its next call: "token
//! revoked" for a JWT, "unknown or revoked token" for an opaque token.

#[cfg(feature = "redis")]
mod run {
    use std::time::{Duration, SystemTime, UNIX_EPOCH};

    use clap::{ArgGroup, Parser};
    use grpc_auth::authn::revocation::Revocations;
    use grpc_auth::store::RedisStore;

    /// Revokes a JWT (by `jti`), a subject's tokens, or an opaque exchange token, in the
    /// Redis the replicas share.
    #[derive(Parser)]
    #[command(name = "revoke")]
    #[command(group(ArgGroup::new("what").required(true).args(["jti", "subject", "token"])))]
    struct Cli {
        /// Redis shared by the replicas
        #[arg(
            long,
            value_name = "URL",
            env = "GRPC_AUTH_REDIS",
            hide_env_values = true
        )]
        redis: String,

        /// Key prefix the replicas use
        #[arg(long, value_name = "PREFIX")]
        redis_prefix: Option<String>,

        /// The `jti` of a JWT to revoke (with --exp)
        #[arg(long, value_name = "ID", requires = "exp")]
        jti: Option<String>,

        /// The token's `exp` (Unix seconds): how long the revocation is kept
        #[arg(long, value_name = "UNIX_SECONDS")]
        exp: Option<u64>,

        /// Revoke every token of this subject issued at or before --before
        #[arg(long, value_name = "SUBJECT")]
        subject: Option<String>,

        /// With --subject: the instant (Unix seconds) [default: now]
        #[arg(long, value_name = "UNIX_SECONDS", requires = "subject")]
        before: Option<u64>,

        /// An opaque exchange token (`gat_...`) to revoke
        #[arg(
            long,
            value_name = "TOKEN",
            env = "GRPC_AUTH_TOKEN",
            hide_env_values = true
        )]
        token: Option<String>,
    }

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    pub(crate) async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        let cli = Cli::parse();
        let mut builder = RedisStore::builder(cli.redis).timeout(Duration::from_secs(2));
        if let Some(prefix) = cli.redis_prefix {
            builder = builder.prefix(prefix);
        }
        let revocations = Revocations::new(builder.build()?);
        if let (Some(jti), Some(exp)) = (cli.jti, cli.exp) {
            revocations.revoke_jti(&jti, at(exp)).await?;
            println!("revoked jti {jti} until {exp}");
        } else if let Some(subject) = cli.subject {
            let before = cli.before.map_or_else(SystemTime::now, at);
            revocations.revoke_subject(&subject, before).await?;
            println!("revoked the tokens of {subject} issued until then");
        } else if let Some(token) = cli.token {
            if revocations.revoke_token(&token).await? {
                println!("revoked the token");
            } else {
                println!("no such live token");
            }
        }
        Ok(())
    }
}

#[cfg(feature = "redis")]
#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    run::main().await
}

#[cfg(not(feature = "redis"))]
fn main() {
    eprintln!(
        "revoke needs grpc-auth's `redis` feature: cargo run --features redis --example revoke"
    );
    std::process::exit(2);
}
