/** Reading a user's file into RGBA pixels, with one clear message per kind of bad file. */

/** Same limit as tiny_cats.image_io.MAX_IMAGE_PIXELS. */
export const MAX_IMAGE_PIXELS = 64_000_000;
export const MAX_FILE_BYTES = 50 * 1024 * 1024;

export class ImageInputError extends Error {}

export interface DecodedImage {
  rgba: Uint8ClampedArray;
  width: number;
  height: number;
  /** A small preview URL (object URL of the file or the sample). */
  previewUrl: string;
}

/** Why a file is refused before decoding, or null. Pure, for unit tests. */
export function precheckFile(name: string, size: number, type: string): string | null {
  if (size === 0) return `${name}: the file is empty (0 bytes).`;
  if (size > MAX_FILE_BYTES) return `${name}: ${(size / 1024 / 1024).toFixed(1)} MB is too large (limit ${MAX_FILE_BYTES / 1024 / 1024} MB).`;
  if (type && !type.startsWith('image/')) return `${name}: not an image (${type}).`;
  return null;
}

export function pixelLimitMessage(name: string, width: number, height: number): string | null {
  if (width * height > MAX_IMAGE_PIXELS) {
    return `${name}: ${width}x${height} pixels is over the ${MAX_IMAGE_PIXELS.toLocaleString('en-US')}-pixel limit.`;
  }
  return null;
}

/** Decodes `blob` (no EXIF rotation, like Pillow's `Image.open` in the Python pipeline). */
export async function decodeImage(blob: Blob, name: string): Promise<DecodedImage> {
  const refused = precheckFile(name, blob.size, blob.type);
  if (refused) throw new ImageInputError(refused);
  let bitmap: ImageBitmap;
  try {
    bitmap = await createImageBitmap(blob, { imageOrientation: 'none', premultiplyAlpha: 'none', colorSpaceConversion: 'none' });
  } catch {
    throw new ImageInputError(`${name}: not an image the browser can read (corrupt, truncated or another kind of file).`);
  }
  const { width, height } = bitmap;
  const tooBig = pixelLimitMessage(name, width, height);
  if (tooBig) {
    bitmap.close();
    throw new ImageInputError(tooBig);
  }
  if (!width || !height) throw new ImageInputError(`${name}: the image has an empty side.`);
  const canvas = new OffscreenCanvas(width, height);
  const context = canvas.getContext('2d', { willReadFrequently: true });
  if (!context) throw new ImageInputError('this browser cannot read image pixels (no 2D canvas).');
  context.drawImage(bitmap, 0, 0);
  bitmap.close();
  const { data } = context.getImageData(0, 0, width, height);
  return { rgba: data, width, height, previewUrl: URL.createObjectURL(blob) };
}
