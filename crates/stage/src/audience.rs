//! The audience page's address, said so that a room can open it: as a URL and as a QR code
//! (in the terminal and on the presenter's page), with the address other machines reach when
//! the page listens on every interface.

use std::net::{IpAddr, SocketAddr, UdpSocket};

use qrcode::QrCode;
use qrcode::render::{svg, unicode};

/// The URL other machines open for a page listening on `listen`: for an unspecified address
/// (`0.0.0.0`), the address of the interface this machine's outbound traffic leaves by.
pub fn url(listen: SocketAddr) -> String {
    let ip = if listen.ip().is_unspecified() {
        outbound_ip().unwrap_or(listen.ip())
    } else {
        listen.ip()
    };
    format!("http://{}/", SocketAddr::new(ip, listen.port()))
}

/// The interface address a datagram to a public address would leave by. Connecting a UDP
/// socket sends nothing: it only asks the kernel for the route.
fn outbound_ip() -> Option<IpAddr> {
    let socket = UdpSocket::bind(("0.0.0.0", 0)).ok()?;
    socket.connect(("192.0.2.1", 9)).ok()?;
    let ip = socket.local_addr().ok()?.ip();
    (!ip.is_unspecified()).then_some(ip)
}

/// Whether a page listening on `listen` is reachable from other machines, which the presenter
/// is told in one line.
pub fn exposed(listen: SocketAddr) -> bool {
    !listen.ip().is_loopback()
}

/// `text` as a QR code in block characters, for a terminal.
pub fn qr_terminal(text: &str) -> String {
    match QrCode::new(text.as_bytes()) {
        Ok(code) => code
            .render::<unicode::Dense1x2>()
            .dark_color(unicode::Dense1x2::Light)
            .light_color(unicode::Dense1x2::Dark)
            .build(),
        Err(_) => String::new(),
    }
}

/// `text` as a QR code in SVG, for a page.
pub fn qr_svg(text: &str) -> String {
    match QrCode::new(text.as_bytes()) {
        Ok(code) => code.render::<svg::Color>().min_dimensions(160, 160).build(),
        Err(_) => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_loopback_page_is_its_own_address_and_not_exposed() {
        let listen: SocketAddr = "127.0.0.1:8089".parse().unwrap();
        assert_eq!(url(listen), "http://127.0.0.1:8089/");
        assert!(!exposed(listen));
        let everywhere: SocketAddr = "0.0.0.0:8089".parse().unwrap();
        assert!(exposed(everywhere));
        assert!(!url(everywhere).contains("0.0.0.0") || outbound_ip().is_none());
    }

    #[test]
    fn the_qr_code_encodes_the_url() {
        let text = qr_terminal("http://192.0.2.7:8089/");
        assert!(text.lines().count() > 10, "a code of block characters");
        assert!(text.chars().all(|c| " ▀▄█\n".contains(c)));
        let svg = qr_svg("http://192.0.2.7:8089/");
        assert!(svg.starts_with("<?xml") || svg.starts_with("<svg"));
        assert!(svg.contains("<path"));
    }
}
