"""DVC stage ``prepare``: build (or validate) REDS, index it, extract patches, write data statistics."""

from pipeline.cli import reports_user_errors
from pipeline.config import load_params
from pipeline.data.prepare import prepare


@reports_user_errors
def main() -> None:
    params = load_params("params.yaml")
    stats = prepare(params.data, params.paths)
    counts = ", ".join(f"{k} {v}" for k, v in stats.counts.to_json().items())
    print(f"data ({stats.source}, {stats.frame_height}x{stats.frame_width}): {counts}")
    print(f"val-300 input: PSNR {stats.input.psnr:.2f} dB, SSIM {stats.input.ssim:.4f}")


if __name__ == "__main__":
    main()
