struct Order {
    lines: usize,
}

#[otel_lite::instrument(fields(order = order))]
fn place(order: &Order) {
    let _ = order.lines;
}

fn main() {
    place(&Order { lines: 1 });
}
