//! Mode negotiation against the offers of typical webcams.

use super::*;

fn format(fourcc: &str, sizes: &[(u32, u32, &[f64])]) -> CameraFormat {
    CameraFormat {
        fourcc: fourcc.to_owned(),
        description: String::new(),
        sizes: sizes
            .iter()
            .map(|&(width, height, fps)| FrameSize {
                width,
                height,
                fps: fps.to_vec(),
            })
            .collect(),
    }
}

/// A common USB 2 webcam: YUYV is slow above 640×480, MJPEG is not.
fn webcam() -> Vec<CameraFormat> {
    vec![
        format(
            "YUYV",
            &[
                (640, 480, &[30.0, 15.0]),
                (1280, 720, &[10.0, 5.0]),
                (1920, 1080, &[5.0]),
            ],
        ),
        format(
            "MJPG",
            &[
                (640, 480, &[30.0]),
                (1280, 720, &[30.0, 15.0]),
                (1920, 1080, &[30.0]),
            ],
        ),
        format("H264", &[(1920, 1080, &[30.0])]),
    ]
}

fn req(width: u32, height: u32, fps: f64) -> CaptureRequest {
    CaptureRequest { width, height, fps }
}

#[test]
fn takes_mjpeg_passthrough_when_it_reaches_the_rate() {
    let m = choose_mode(&webcam(), &req(1280, 720, 30.0)).unwrap();
    assert_eq!(
        (m.format, m.width, m.height, m.fps),
        (CaptureFormat::Mjpeg, 1280, 720, 30.0)
    );
}

#[test]
fn at_equal_rates_still_prefers_mjpeg_then_yuyv() {
    let m = choose_mode(&webcam(), &req(640, 480, 30.0)).unwrap();
    assert_eq!(m.format, CaptureFormat::Mjpeg);
    let no_mjpeg: Vec<_> = webcam()
        .into_iter()
        .filter(|f| f.fourcc != "MJPG")
        .collect();
    let m = choose_mode(&no_mjpeg, &req(640, 480, 30.0)).unwrap();
    assert_eq!((m.format, m.fps), (CaptureFormat::Yuyv, 30.0));
}

#[test]
fn yuyv_only_camera_gets_yuyv_at_its_best_rate() {
    let cam = vec![format("YUYV", &[(1280, 720, &[10.0, 5.0])])];
    let m = choose_mode(&cam, &req(1280, 720, 30.0)).unwrap();
    assert_eq!((m.format, m.fps), (CaptureFormat::Yuyv, 10.0));
}

#[test]
fn size_matters_more_than_rate_and_nearest_size_wins() {
    let cam = vec![
        format("YUYV", &[(640, 480, &[30.0]), (1280, 720, &[5.0])]),
        format("NV12", &[(1280, 800, &[30.0])]),
    ];
    let m = choose_mode(&cam, &req(1280, 720, 30.0)).unwrap();
    assert_eq!(
        (m.width, m.height, m.format),
        (1280, 720, CaptureFormat::Yuyv)
    );
    let m = choose_mode(&cam, &req(1200, 700, 30.0)).unwrap();
    assert_eq!((m.width, m.height), (1280, 720));
    let m = choose_mode(&cam, &req(320, 240, 30.0)).unwrap();
    assert_eq!((m.width, m.height), (640, 480));
}

#[test]
fn rates_prefer_reaching_the_request_and_default_when_unknown() {
    let cam = vec![format("MJPG", &[(640, 480, &[60.0, 25.0, 24.0])])];
    assert_eq!(choose_mode(&cam, &req(640, 480, 30.0)).unwrap().fps, 60.0);
    assert_eq!(choose_mode(&cam, &req(640, 480, 24.0)).unwrap().fps, 24.0);
    let cam = vec![format("NV12", &[(640, 480, &[])])];
    let m = choose_mode(&cam, &req(640, 480, 12.5)).unwrap();
    assert_eq!((m.format, m.fps), (CaptureFormat::Nv12, 12.5));
}

#[test]
fn nothing_usable_is_none_and_described() {
    let cam = vec![
        format("H264", &[(1920, 1080, &[30.0])]),
        format("GREY", &[]),
    ];
    assert_eq!(choose_mode(&cam, &req(640, 480, 30.0)), None);
    assert_eq!(describe_formats(&cam), "H264 1920x1080; GREY ");
    assert_eq!(describe_formats(&[]), "nothing");
}

#[test]
fn selectors_parse_and_display() {
    assert_eq!(
        "2".parse::<CameraSelector>().unwrap(),
        CameraSelector::Index(2)
    );
    let path: CameraSelector = "/dev/video4".parse().unwrap();
    assert_eq!(path, CameraSelector::Path("/dev/video4".into()));
    assert_eq!(path.to_string(), "/dev/video4");
    assert_eq!(
        CaptureFormat::from_fourcc("YUYV"),
        Some(CaptureFormat::Yuyv)
    );
    assert_eq!(CaptureFormat::from_fourcc("H264"), None);
    let info = CameraInfo {
        path: "/dev/video0".into(),
        name: "Cam".into(),
        driver: "uvcvideo".into(),
        formats: webcam(),
    };
    assert!(info.to_string().contains("MJPG :"), "{info}");
}
