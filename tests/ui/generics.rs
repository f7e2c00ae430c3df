#[bsjobs::job]
fn generic<T: ToString>(value: T) {
    let _ = value.to_string();
}

#[bsjobs::job]
fn lifetime<'a>(value: String) {
    let _ = value;
}

#[bsjobs::job]
fn where_clause(value: String)
where
    String: Clone,
{
    let _ = value;
}

#[bsjobs::job]
fn const_generic<const N: usize>() {}

fn main() {}
