//! Writing numbers into header text without the formatting machinery: a proxy makes
//! branches, tags and Via values for every request it forwards, and `format!` costs
//! more than the rest of building them.

/// Position of the first `b` in `s`. The grammar's delimiters are ASCII, so the position
/// is a character boundary; a byte search costs less than a `char` pattern's.
pub fn find_byte(s: &str, b: u8) -> Option<usize> {
    memchr::memchr(b, s.as_bytes())
}

/// Appends `n` in decimal.
pub fn push_decimal(s: &mut String, n: u64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    let mut n = n;
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    for &d in &digits[i..] {
        s.push(char::from(d));
    }
}

/// Appends `n` in lower-case hex, zero-padded to at least `width` digits (what
/// `{n:0width$x}` prints).
pub fn push_hex(s: &mut String, n: u64, width: usize) {
    let digits = (64 - n.leading_zeros()).div_ceil(4).max(1) as usize;
    for _ in digits..width {
        s.push('0');
    }
    for i in (0..digits).rev() {
        let d = ((n >> (4 * i)) & 0xf) as u8;
        s.push(char::from(if d < 10 { b'0' + d } else { b'a' + d - 10 }));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_print_as_format_does() {
        for n in [0, 1, 9, 10, 15, 16, 255, 65535, 1 << 40, u64::MAX] {
            let mut d = String::new();
            push_decimal(&mut d, n);
            assert_eq!(d, n.to_string());
            for width in [0, 1, 8, 16, 20] {
                let mut h = String::from("x");
                push_hex(&mut h, n, width);
                assert_eq!(h, format!("x{n:0width$x}"));
            }
        }
    }
}
