struct Mailer;

impl Mailer {
    #[bsjobs::job]
    async fn send(&self, to: String) {
        let _ = to;
    }
}

fn main() {}
