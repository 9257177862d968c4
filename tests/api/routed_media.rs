//! The media engine without a browser: webrtc-rs participants connect to the engine's one
//! UDP port, publish audio and video, and receive exactly what the role rules allow.

use std::collections::HashMap;
use std::time::Duration;

use sightline::domain::{Mode, Role, Seat};
use sightline::media::{Command, Event, MediaEngine, MediaSettings};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::support_media::Participant;

struct Call {
    engine: MediaEngine,
    events: mpsc::UnboundedReceiver<Event>,
    parts: HashMap<String, Participant>,
    call: String,
    stop: CancellationToken,
}

impl Call {
    async fn start() -> Call {
        let stop = CancellationToken::new();
        let engine = MediaEngine::start(&MediaSettings::default(), stop.clone())
            .await
            .expect("engine");
        let call = format!("call-{}", rand::random::<u32>());
        let events = engine.subscribe(&call).await;
        Call {
            engine,
            events,
            parts: HashMap::new(),
            call,
            stop,
        }
    }

    async fn join(&mut self, id: &str, role: Role, mode: Option<Mode>) {
        self.parts.insert(id.to_owned(), Participant::new(id).await);
        self.engine
            .command(Command::Join {
                call: self.call.clone(),
                participant: id.to_owned(),
                seat: Seat::new(role, mode),
            })
            .await
            .expect("join");
    }

    async fn set_seat(&mut self, id: &str, role: Role, mode: Option<Mode>) {
        self.engine
            .command(Command::SetSeat {
                call: self.call.clone(),
                participant: id.to_owned(),
                seat: Seat::new(role, mode),
            })
            .await
            .expect("set seat");
    }

    /// Relays the engine's offers and the answers until `dur` has passed, everyone
    /// sending media every 20 ms.
    async fn run(&mut self, dur: Duration) {
        let end = tokio::time::Instant::now() + dur;
        while tokio::time::Instant::now() < end {
            while let Ok(ev) = self.events.try_recv() {
                if let Event::Offer {
                    participant, sdp, ..
                } = ev
                    && let Some(p) = self.parts.get_mut(&participant)
                {
                    let answer = p.answer(&sdp).await;
                    let r = self
                        .engine
                        .command(Command::Answer {
                            call: self.call.clone(),
                            participant: participant.clone(),
                            sdp: answer,
                        })
                        .await;
                    assert!(r.is_ok(), "answer of {participant}: {r:?}");
                }
            }
            for p in self.parts.values_mut() {
                p.send().await;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn p(&self, id: &str) -> &Participant {
        &self.parts[id]
    }

    async fn close(self) {
        for p in self.parts.values() {
            let _ = p.pc.close().await;
        }
        self.stop.cancel();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_participants_exchange_audio_and_video_through_the_engine() {
    let mut call = Call::start().await;
    call.join("agent", Role::Agent, None).await;
    call.join("customer", Role::Customer, None).await;
    call.join("expert", Role::Expert, None).await;
    call.run(Duration::from_secs(4)).await;
    let before: HashMap<(String, String, &str), u64> = ["agent", "customer", "expert"]
        .iter()
        .flat_map(|to| {
            ["agent", "customer", "expert"]
                .iter()
                .flat_map(move |from| {
                    ["audio", "video"]
                        .iter()
                        .map(move |k| (to.to_string(), from.to_string(), *k))
                })
        })
        .map(|(to, from, k)| {
            let n = call.p(&to).received(&from, k);
            ((to, from, k), n)
        })
        .collect();
    for ((to, from, k), n) in &before {
        if to == from {
            assert_eq!(*n, 0);
        } else {
            assert!(*n > 10, "{to} got {n} {k} packets from {from}");
        }
    }
    // Still flowing.
    call.run(Duration::from_secs(1)).await;
    for ((to, from, k), n) in &before {
        if to != from {
            assert!(
                call.p(to).received(from, k) > *n,
                "{to} ← {from} {k} stalled"
            );
        }
    }
    let (stats, calls, participants) = call.engine.stats();
    assert_eq!((calls, participants), (1, 3));
    assert!(stats.forwarded_packets > 100, "{stats:?}");
    assert!(stats.plis_sent > 0, "{stats:?}");
    call.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listening_supervisor_is_invisible_to_the_customer_and_whisper_reaches_agents_only() {
    let mut call = Call::start().await;
    call.join("agent", Role::Agent, None).await;
    call.join("customer", Role::Customer, None).await;
    call.join("supervisor", Role::Supervisor, Some(Mode::Listen))
        .await;
    call.run(Duration::from_secs(4)).await;

    // The supervisor receives both; nobody receives anything from it.
    for from in ["agent", "customer"] {
        for k in ["audio", "video"] {
            assert!(
                call.p("supervisor").received(from, k) > 10,
                "supervisor ← {from} {k}"
            );
        }
    }
    for to in ["agent", "customer"] {
        assert!(
            call.p(to).sources().iter().all(|(s, _)| s != "supervisor"),
            "{to}: {:?}",
            call.p(to).sources()
        );
    }
    // The customer's connection carries no trace of the supervisor: no section, no msid.
    let customer_sdp = call
        .p("customer")
        .pc
        .remote_description()
        .await
        .expect("sdp")
        .sdp;
    assert!(!customer_sdp.contains("supervisor"), "{customer_sdp}");
    assert_eq!(customer_sdp.matches("m=video").count(), 2, "own + agent's");

    // Whisper: the agent hears the supervisor; the customer still gets nothing.
    call.set_seat("supervisor", Role::Supervisor, Some(Mode::Whisper))
        .await;
    call.run(Duration::from_secs(3)).await;
    assert!(call.p("agent").received("supervisor", "audio") > 10);
    assert_eq!(call.p("agent").received("supervisor", "video"), 0);
    assert!(
        call.p("customer")
            .sources()
            .iter()
            .all(|(s, _)| s != "supervisor")
    );
    let customer_sdp = call
        .p("customer")
        .pc
        .remote_description()
        .await
        .expect("sdp")
        .sdp;
    assert!(!customer_sdp.contains("supervisor"));

    // Back to listening: forwarding stops at once.
    call.set_seat("supervisor", Role::Supervisor, Some(Mode::Listen))
        .await;
    call.run(Duration::from_millis(300)).await;
    let n = call.p("agent").received("supervisor", "audio");
    call.run(Duration::from_secs(1)).await;
    assert!(call.p("agent").received("supervisor", "audio") <= n + 2);
    let (stats, _, _) = call.engine.stats();
    assert!(stats.rtp_refused > 0, "{stats:?}");
    call.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removal_stops_forwarding_and_the_call_cap_holds() {
    let settings = MediaSettings {
        max_per_call: 2,
        ..Default::default()
    };
    let stop = CancellationToken::new();
    let engine = MediaEngine::start(&settings, stop.clone())
        .await
        .expect("engine");
    let seat = Seat::new(Role::Agent, None);
    for (i, want_ok) in [(0, true), (1, true), (2, false)] {
        let r = engine
            .command(Command::Join {
                call: "c".into(),
                participant: format!("p{i}"),
                seat,
            })
            .await;
        assert_eq!(r.is_ok(), want_ok, "{i}: {r:?}");
        if !want_ok {
            assert!(r.unwrap_err().to_string().contains("at most 2"));
        }
    }
    engine
        .command(Command::Leave {
            call: "c".into(),
            participant: "p0".into(),
        })
        .await
        .expect("leave");
    assert!(
        engine
            .command(Command::Answer {
                call: "c".into(),
                participant: "p0".into(),
                sdp: "v=0".into()
            })
            .await
            .is_err()
    );
    stop.cancel();
}

#[tokio::test]
async fn a_busy_media_port_fails_start_naming_the_key() {
    let taken = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
    let settings = MediaSettings {
        listen: taken.local_addr().expect("addr"),
        ..Default::default()
    };
    let err = MediaEngine::start(&settings, CancellationToken::new())
        .await
        .err()
        .expect("must fail");
    assert_eq!(err.0, "media.listen");
}

#[tokio::test]
async fn garbage_on_the_media_port_is_dropped() {
    let stop = CancellationToken::new();
    let engine = MediaEngine::start(&MediaSettings::default(), stop.clone())
        .await
        .expect("engine");
    let sock = tokio::net::UdpSocket::bind("127.0.0.1:0")
        .await
        .expect("bind");
    for i in 0..2000u32 {
        let len = (i % 1400) as usize;
        let mut data: Vec<u8> = (0..len).map(|_| rand::random::<u8>()).collect();
        if let Some(b) = data.first_mut() {
            *b = [0u8, 1, 22, 128, 200][(i % 5) as usize];
        }
        let _ = sock.send_to(&data, engine.local_addr()).await;
    }
    // The engine still answers commands.
    let r = engine
        .command(Command::Join {
            call: "c".into(),
            participant: "a".into(),
            seat: Seat::new(Role::Agent, None),
        })
        .await;
    assert!(r.is_ok());
    let (stats, _, _) = engine.stats();
    assert!(stats.dropped_unknown > 0 || stats.datagrams_in == 0);
    stop.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_participant_without_udp_reaches_the_engine_over_ice_tcp() {
    let mut call = Call::start().await;
    let tcp = call
        .engine
        .announce_tcp()
        .expect("ICE-TCP is on by default");
    call.join("agent", Role::Agent, None).await;
    call.parts
        .insert("customer".into(), Participant::tcp_only("customer").await);
    call.engine
        .command(Command::Join {
            call: call.call.clone(),
            participant: "customer".into(),
            seat: Seat::new(Role::Customer, None),
        })
        .await
        .expect("join");
    call.run(Duration::from_secs(5)).await;
    // The engine offered a passive TCP candidate on its ICE-TCP port…
    let offer = call
        .p("customer")
        .pc
        .remote_description()
        .await
        .expect("offer")
        .sdp;
    assert!(
        offer.contains(&format!(
            "{} {} typ host tcptype passive",
            tcp.ip(),
            tcp.port()
        )),
        "{offer}"
    );
    // …and media flows both ways over it (the customer has no UDP socket at all).
    for (to, from) in [("customer", "agent"), ("agent", "customer")] {
        for k in ["audio", "video"] {
            let n = call.p(to).received(from, k);
            assert!(n > 20, "{to} got {n} {k} packets from {from}");
        }
    }
    let got = call.p("customer").received("agent", "video");
    eprintln!("over ICE-TCP in 5 s: customer got {got} video packets from the agent");
    call.close().await;
}

#[tokio::test]
async fn a_busy_ice_tcp_port_fails_start_naming_the_key() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let settings = MediaSettings {
        listen_tcp: taken.local_addr().expect("addr"),
        ..Default::default()
    };
    let err = MediaEngine::start(&settings, CancellationToken::new())
        .await
        .err()
        .expect("must fail");
    assert_eq!(err.0, "media.listen_tcp");
    assert!(err.1.contains("cannot bind"), "{}", err.1);
    // ICE-TCP off: the same settings start (UDP only, no TCP candidate).
    let settings = MediaSettings {
        ice_tcp: false,
        ..settings
    };
    let stop = CancellationToken::new();
    let engine = MediaEngine::start(&settings, stop.clone())
        .await
        .expect("starts without ICE-TCP");
    assert!(engine.announce_tcp().is_none());
    stop.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_on_both_ports_leaves_a_running_call_untouched() {
    use tokio::io::AsyncWriteExt;
    let mut call = Call::start().await;
    call.join("agent", Role::Agent, None).await;
    call.join("customer", Role::Customer, None).await;
    call.run(Duration::from_secs(3)).await;
    let before = call.p("customer").received("agent", "video");
    assert!(before > 20, "{before}");
    // UDP: random datagrams in every RFC 7983 class.
    let udp = tokio::net::UdpSocket::bind("127.0.0.1:0")
        .await
        .expect("bind");
    for i in 0..1000u32 {
        let mut d: Vec<u8> = (0..(i % 1300)).map(|_| rand::random::<u8>()).collect();
        if let Some(b) = d.first_mut() {
            *b = [0u8, 1, 22, 128, 200][(i % 5) as usize];
        }
        let _ = udp.send_to(&d, call.engine.local_addr()).await;
    }
    // TCP: random streams, valid frames of garbage, a frame too long, a half frame left open.
    let tcp = call.engine.announce_tcp().expect("ICE-TCP");
    let mut open = Vec::new();
    for i in 0..20u32 {
        let Ok(mut s) = tokio::net::TcpStream::connect(tcp).await else {
            continue;
        };
        let body: Vec<u8> = match i % 4 {
            0 => (0..3000).map(|_| rand::random::<u8>()).collect(),
            1 => (0..50)
                .flat_map(|_| {
                    let n = rand::random::<u8>() as usize;
                    let mut f = vec![0u8, n as u8];
                    f.extend((0..n).map(|_| rand::random::<u8>()));
                    f
                })
                .collect(),
            2 => vec![0xFF, 0xFF, 1, 2, 3],
            _ => vec![0x00, 0x40, 0x00, 0x01],
        };
        let _ = s.write_all(&body).await;
        open.push(s);
    }
    call.run(Duration::from_secs(2)).await;
    let after = call.p("customer").received("agent", "video");
    assert!(after > before + 50, "{before} → {after}");
    assert!(call.p("agent").received("customer", "video") > 50);
    let (stats, _, participants) = call.engine.stats();
    assert_eq!(participants, 2);
    assert!(stats.dropped_unknown > 0, "{stats:?}");
    drop(open);
    call.close().await;
}
