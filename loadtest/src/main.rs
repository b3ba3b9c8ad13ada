fn main() {
    println!("gavel-loadtest: scenarios arrive with the load-test issue");
}
