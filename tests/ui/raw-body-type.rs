// Any other body type is read as JSON, so it must be Serialize (for
// `enqueue`) and Deserialize (for the worker); reported at the type.
struct NotSerde;

#[bsjobs::job(raw)]
async fn opaque(body: NotSerde) {
    let _ = body;
}

fn main() {}
