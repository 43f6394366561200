trait Store {
    #[otel_lite::instrument]
    fn get(&self) -> u32;
}

fn main() {}
