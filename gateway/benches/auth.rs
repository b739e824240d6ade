//! Criterion benches of upgrade authentication: one `Authenticator::verify`
//! of a typical token (sub, iat, exp) per algorithm, plus the cheapest
//! refusal (a token whose header names another algorithm) and token
//! extraction from a percent-encoded query.
//!
//! Auth runs once per connection, at the upgrade, so these numbers bound the
//! upgrade rate a core can authenticate, not the message rate.
//!
//! Run: `cargo bench -p ringgate --bench auth`. The keys are the test-only
//! keys in `tests/auth_keys/`.

use std::hint::black_box;
use std::path::PathBuf;

use criterion::{Criterion, criterion_group, criterion_main};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use ringgate::defense::auth::{AuthConfig, Authenticator, token_from_request};
use serde_json::json;

const SECRET: &str = "0123456789abcdef0123456789abcdef-bench-only";
const NOW: u64 = 1_750_000_000;

fn key_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/auth_keys")
        .join(name)
}

fn sign(algorithm: Algorithm, key: &EncodingKey) -> String {
    let claims = json!({ "sub": "user-12345", "iat": NOW, "exp": NOW + 3600 });
    jsonwebtoken::encode(&Header::new(algorithm), &claims, key).expect("sign")
}

fn authenticator(config: AuthConfig) -> Authenticator {
    Authenticator::from_config(&config)
        .expect("valid config")
        .expect("a key is configured")
}

fn with_public_key(name: &str) -> Authenticator {
    authenticator(AuthConfig {
        jwt_public_key_file: Some(key_path(name)),
        ..AuthConfig::default()
    })
}

fn private_pem(name: &str) -> Vec<u8> {
    std::fs::read(key_path(name)).expect("test key")
}

fn verify(c: &mut Criterion) {
    let hs256 = authenticator(AuthConfig {
        jwt_hs256_secret: SECRET.into(),
        ..AuthConfig::default()
    });
    let hs256_token = sign(
        Algorithm::HS256,
        &EncodingKey::from_secret(SECRET.as_bytes()).expect("secret"),
    );
    let eddsa = with_public_key("ed25519_public.pem");
    let eddsa_token = sign(
        Algorithm::EdDSA,
        &EncodingKey::from_ed_pem(&private_pem("ed25519_private.pem")).expect("ed key"),
    );
    let rs256 = with_public_key("rsa_public.pem");
    let rs256_token = sign(
        Algorithm::RS256,
        &EncodingKey::from_rsa_pem(&private_pem("rsa_private.pem")).expect("rsa key"),
    );

    let mut group = c.benchmark_group("verify");
    for (name, authenticator, token) in [
        ("hs256", &hs256, &hs256_token),
        ("eddsa", &eddsa, &eddsa_token),
        ("rs256_2048", &rs256, &rs256_token),
        ("rs256_refuses_hs256_token", &rs256, &hs256_token),
    ] {
        group.bench_function(name, |b| {
            b.iter(|| {
                authenticator
                    .verify(black_box(token), black_box(NOW))
                    .is_ok()
            })
        });
    }
    group.finish();

    let escaped: String = eddsa_token
        .chars()
        .map(|c| format!("%{:02X}", c as u32))
        .collect();
    let target = format!("/ws?room=1&access_token={escaped}&v=2");
    c.bench_function("token_from_query_percent_encoded", |b| {
        b.iter(|| token_from_request(None, black_box(&target)).map(|t| t.len()))
    });
}

criterion_group!(benches, verify);
criterion_main!(benches);
