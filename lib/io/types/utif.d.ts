// The parts of utif (https://github.com/photopea/UTIF.js) segvol uses.
declare module 'utif' {
  interface IFD {
    width: number;
    height: number;
    data: Uint8Array;
    [tag: string]: unknown;
  }
  function decode(buffer: ArrayBuffer | Uint8Array): IFD[];
  function decodeImage(buffer: ArrayBuffer | Uint8Array, ifd: IFD): void;
  export { decode, decodeImage, IFD };
}
