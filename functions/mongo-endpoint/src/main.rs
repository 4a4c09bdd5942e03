//! Lambda entry point: tracing, settings and AWS clients once, then the
//! runtime loop. Everything else is in the library.

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_runtime::Error> {
    shared::function::serve::<mongo_endpoint::MongoEndpoint>().await
}
