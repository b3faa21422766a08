// Photos from a phone, made fit to upload: the API takes JPEG or PNG of at most 5 MiB and 8000
// pixels a side, and a phone camera gives 50 MP (8160 × 6120, 15-25 MB). A photo that is too big
// is decoded here, scaled to at most MAX_EDGE pixels on its long edge and re-encoded as JPEG, in
// the browser, before it is sent. A small JPEG or PNG goes as it is.

export const MAX_EDGE = 4096;
const MAX_BYTES = 4.5 * 1024 * 1024; // under the server's 5 MiB, with room for the form
const QUALITIES = [0.85, 0.75, 0.6, 0.45];

function fits(file, width, height) {
  return (
    (file.type === "image/jpeg" || file.type === "image/png") &&
    file.size <= MAX_BYTES &&
    (width === undefined || Math.max(width, height) <= MAX_EDGE)
  );
}

function canvasFor(width, height) {
  if (typeof OffscreenCanvas === "function") return new OffscreenCanvas(width, height);
  const canvas = document.createElement("canvas");
  canvas.width = width;
  canvas.height = height;
  return canvas;
}

function encode(canvas, quality) {
  if (canvas.convertToBlob) return canvas.convertToBlob({ type: "image/jpeg", quality });
  return new Promise((resolve, reject) =>
    canvas.toBlob((blob) => (blob ? resolve(blob) : reject(new Error("toBlob"))), "image/jpeg", quality),
  );
}

/** The size a photo of width × height is scaled to: its long edge at most MAX_EDGE. */
export function scaledSize(width, height, maxEdge = MAX_EDGE) {
  const scale = Math.min(1, maxEdge / Math.max(width, height));
  return [Math.max(1, Math.round(width * scale)), Math.max(1, Math.round(height * scale))];
}

/**
 * `file` as it can be uploaded: itself when it already fits, else a JPEG File of at most MAX_EDGE
 * pixels on the long edge (the photo's own orientation applied). Rejects when it is not an image
 * the browser can decode.
 */
export async function prepareUpload(file) {
  if (fits(file)) return file;
  const bitmap = await createImageBitmap(file, { imageOrientation: "from-image" });
  try {
    if (fits(file, bitmap.width, bitmap.height)) return file;
    const [width, height] = scaledSize(bitmap.width, bitmap.height);
    const canvas = canvasFor(width, height);
    const g = canvas.getContext("2d");
    g.imageSmoothingEnabled = true;
    g.imageSmoothingQuality = "high";
    g.drawImage(bitmap, 0, 0, width, height);
    let blob = null;
    for (const quality of QUALITIES) {
      blob = await encode(canvas, quality);
      if (blob.size <= MAX_BYTES) break;
    }
    const name = file.name.replace(/\.[^.]*$/, "") + ".jpg";
    return new File([blob], name, { type: "image/jpeg", lastModified: file.lastModified });
  } finally {
    bitmap.close();
  }
}
