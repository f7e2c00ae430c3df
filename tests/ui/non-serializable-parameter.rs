pub struct Mailbox {
    pub address: String,
}

#[bsjobs::job]
async fn deliver(to: Mailbox, subject: String) {
    let _ = (to.address, subject);
}

fn main() {}
